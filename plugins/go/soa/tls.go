package soa

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"
)

// TLSFiles names the PEM files of a TLS client: the CA that signs the servers' certificates and,
// for mutual TLS, this client's certificate and key. ServerName overrides the name checked in the
// server's certificate (default: the host dialled).
type TLSFiles struct {
	CA         string // CA bundle; empty means the system roots
	Cert       string // client certificate, for servers that require one
	Key        string // the client certificate's private key
	ServerName string // the name to verify; default the host dialled
}

// config builds a tls.Config; host is the server name to verify when ServerName is empty.
func (f *TLSFiles) config(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if f == nil {
		return cfg, nil
	}
	if f.ServerName != "" {
		cfg.ServerName = f.ServerName
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca: %s holds no PEM certificate", f.CA)
		}
		cfg.RootCAs = pool
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("cert and key go together: set both or neither")
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("cert/key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// quietLogger keeps the etcd client's own logging out of the program's output; the Registry
// reports what matters through its Logger.
func quietLogger() *zap.Logger { return zap.NewNop() }
