package main

import (
	"context"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
)

// benchRaw is the baseline: Apache Thrift's own Go client pinned to f.addr over one reused
// buffered binary connection, which the goroutines take turns on (a TStandardClient is not
// safe for concurrent use).
func benchRaw(f flags) map[string]any {
	conf := &thrift.TConfiguration{}
	sock := thrift.NewTSocketConf(f.addr, conf)
	if err := sock.Open(); err != nil {
		fail(err)
	}
	defer sock.Close()
	trans := thrift.NewTBufferedTransport(sock, 4096)
	var proto thrift.TProtocol = thrift.NewTBinaryProtocolConf(trans, conf)
	if f.rawTHeader {
		proto = thrift.NewTHeaderProtocolConf(trans, conf)
	}
	echo := client_echo.NewEchoServiceClient(thrift.NewTStandardClient(proto, proto))
	var mu sync.Mutex
	return bench(context.Background(), func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := echo.Echo(ctx, "hello")
		return err
	}, f)
}
