package soa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
)

// testEtcd is the etcd that tests/test_plugin_go.py started for these tests.
func testEtcd() string {
	endpoint := os.Getenv("SOA_TEST_ETCD")
	if endpoint == "" {
		panic("SOA_TEST_ETCD is not set: run these tests through tests/test_plugin_go.py, or set it to a live etcd's host:port")
	}
	return endpoint
}

var prefixes atomic.Int64

// testPrefix is a registry prefix of this test alone.
func testPrefix() string {
	return fmt.Sprintf("/soa-go-test/%d-%d", os.Getpid(), prefixes.Add(1))
}

// echoHandler is the Go side of tests/fixtures/client_echo.thrift.
type echoHandler struct {
	port        int32
	calls       atomic.Int64
	slowStarted atomic.Int64
}

func (h *echoHandler) Ping(context.Context) error { h.calls.Add(1); return nil }
func (h *echoHandler) Echo(_ context.Context, msg string) (string, error) {
	h.calls.Add(1)
	return msg, nil
}
func (h *echoHandler) Slow(_ context.Context, ms int32) (int32, error) {
	h.slowStarted.Add(1)
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return h.port, nil
}
func (h *echoHandler) Whoami(context.Context) (int32, error) { h.calls.Add(1); return h.port, nil }
func (h *echoHandler) Bump(context.Context, string) (int64, error) {
	return h.calls.Add(1), nil
}
func (h *echoHandler) Place(_ context.Context, o *client_echo.Order, reason string) (*client_echo.Order, error) {
	if reason != "" {
		return nil, &client_echo.Rejected{Reason: reason, Code: 7}
	}
	return o, nil
}
func (h *echoHandler) DeadlineMs(context.Context) (int32, error) { return -1, nil }
func (h *echoHandler) Crash(context.Context) error               { return fmt.Errorf("crash") }

// echoServer is a Go Thrift server of EchoService (binary, buffered) registered in etcd under
// a lease, as a soa server registers. stop deregisters it and closes the listener.
type echoServer struct {
	handler *echoHandler
	addr    string
	stop    func()
}

func startEcho(prefix string) *echoServer {
	sock, err := thrift.NewTServerSocket("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	if err := sock.Listen(); err != nil {
		panic(err)
	}
	port := sock.Addr().(*net.TCPAddr).Port
	h := &echoHandler{port: int32(port)}
	server := thrift.NewTSimpleServer4(client_echo.NewEchoServiceProcessor(h),
		sock, thrift.NewTBufferedTransportFactory(4096),
		thrift.NewTBinaryProtocolFactoryConf(nil))
	go func() { _ = server.Serve() }()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{testEtcd()}, DialTimeout: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, 5)
	if err != nil {
		panic(err)
	}
	addr := sock.Addr().String()
	value, _ := json.Marshal(map[string]any{"service": "echo", "host": "127.0.0.1", "port": port,
		"idl_hash": client_echo.SoaIDLHash})
	key := prefix + "/services/echo/" + addr
	if _, err := cli.Put(ctx, key, string(value), clientv3.WithLease(lease.ID)); err != nil {
		panic(err)
	}
	return &echoServer{handler: h, addr: addr, stop: func() {
		_, _ = cli.Revoke(context.Background(), lease.ID)
		_ = cli.Close()
		_ = server.Stop()
	}}
}
