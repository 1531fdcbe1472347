package soa_test

import (
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
	"github.com/soa-shop/soa/plugins/go/soa"
)

// The client's own cost per call, against a Go THeader server in this process: Apache's raw
// THeader client against the plugin (go test -bench . -run '^$').
func BenchmarkRawTHeaderClient(b *testing.B) {
	in := startTHeaderEcho(b, &headerHandler{}, "x")
	sock := thrift.NewTSocketConf(in.Address(), nil)
	if err := sock.Open(); err != nil {
		b.Fatal(err)
	}
	defer sock.Close()
	proto := thrift.NewTHeaderProtocolConf(thrift.NewTBufferedTransport(sock, 4096), nil)
	echo := client_echo.NewEchoServiceClient(thrift.NewTStandardClient(proto, proto))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := echo.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlugin(b *testing.B) {
	in := startTHeaderEcho(b, &headerHandler{}, "x")
	c, _ := soa.NewClient("echo", soa.StaticInstances{in}, soa.ClientOptions{})
	defer c.Close()
	echo := client_echo.NewEchoServiceClient(c)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := echo.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
