package soa_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
	"github.com/soa-shop/soa/plugins/go/soa"
)

// writeCA makes a CA and a certificate for 127.0.0.1 signed by it, as PEM files in dir.
func writeCA(t *testing.T, dir, name string) (caFile string, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, name+".pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLSInstances(t *testing.T) {
	dir := t.TempDir()
	ca, cert := writeCA(t, dir, "ca")
	otherCA, _ := writeCA(t, dir, "other")
	// A TLS THeader server of its own: Apache's TSSLServerSocket races on Stop.
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	processor := client_echo.NewEchoServiceProcessor(&headerHandler{})
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				proto := thrift.NewTHeaderProtocolConf(thrift.NewStreamTransportRW(nc), nil)
				for {
					if ok, err := processor.Process(context.Background(), proto, proto); !ok || err != nil {
						return
					}
				}
			}()
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	parse := func(tlsOn bool) soa.Instance {
		in, err := soa.ParseInstance([]byte(`{"service":"echo","host":"127.0.0.1","port":`+port+
			`,"theader":true,"tls":`+strconv.FormatBool(tlsOn)+`}`), "", "")
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	call := func(in soa.Instance, files *soa.TLSFiles) error {
		c, _ := soa.NewClient("echo", soa.StaticInstances{in}, soa.ClientOptions{TLS: files, EjectAfter: -1})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := client_echo.NewEchoServiceClient(c).Echo(ctx, "x")
		return err
	}
	if err := call(parse(true), &soa.TLSFiles{CA: ca}); err != nil {
		t.Fatalf("TLS with the right CA: %v", err)
	}
	err = call(parse(true), &soa.TLSFiles{CA: otherCA})
	var te *soa.TransportError
	if !errors.As(err, &te) || te.Sent || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a wrong CA: got %v", err)
	}
	if err := call(parse(false), nil); err == nil {
		t.Fatal("plaintext to a TLS server succeeded")
	}
	if err := call(parse(true), &soa.TLSFiles{CA: filepath.Join(dir, "missing.pem")}); err == nil ||
		!strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("a missing CA file: got %v", err)
	}
}

// TestEtcdAuth runs against SOA_TEST_ETCD_AUTH, a fresh etcd of its own (auth is enabled here).
func TestEtcdAuth(t *testing.T) {
	endpoint := os.Getenv("SOA_TEST_ETCD_AUTH")
	if endpoint == "" {
		t.Fatal("SOA_TEST_ETCD_AUTH is not set: tests/test_plugin_go.py starts an etcd for it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	steps := []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "reader", "/soa/", clientv3.GetPrefixRangeEnd("/soa/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "client", "clientpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "client", "reader"); return err },
		func() error {
			_, err := admin.Put(ctx, "/soa/services/echo/127.0.0.1:1", `{"service":"echo","host":"127.0.0.1","port":1}`)
			return err
		},
		func() error { _, err := admin.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	reg, err := soa.NewRegistry(soa.RegistryConfig{Endpoints: []string{endpoint}, Username: "client", Password: "clientpw"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	got, err := reg.List(ctx, "echo")
	if err != nil || len(got) != 1 {
		t.Fatalf("a reader lists: got %v, %v", got, err)
	}
	res, err := reg.Resolve(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	bad, err := soa.NewRegistry(soa.RegistryConfig{Endpoints: []string{endpoint}, Username: "client", Password: "wrong"})
	if err == nil {
		defer bad.Close()
		_, err = bad.List(ctx, "echo")
	}
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong credentials: got %v (and the password must not appear)", err)
	}
	t.Log("wrong credentials:", err)
}
