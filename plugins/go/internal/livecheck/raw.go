package main

import (
	"context"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
)

// rawCaller is the baseline: Apache Thrift's own Go client pinned to addr over one reused
// buffered binary connection (THeader with theader, no info headers), which the goroutines take
// turns on (a TStandardClient is not safe for concurrent use). done closes it.
func rawCaller(addr string, theader bool) (call func(context.Context) error, done func()) {
	conf := &thrift.TConfiguration{}
	sock := thrift.NewTSocketConf(addr, conf)
	if err := sock.Open(); err != nil {
		fail(err)
	}
	trans := thrift.NewTBufferedTransport(sock, 4096)
	var proto thrift.TProtocol = thrift.NewTBinaryProtocolConf(trans, conf)
	if theader {
		proto = thrift.NewTHeaderProtocolConf(trans, conf)
	}
	echo := client_echo.NewEchoServiceClient(thrift.NewTStandardClient(proto, proto))
	var mu sync.Mutex
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := echo.Echo(ctx, "hello")
		return err
	}, func() { _ = sock.Close() }
}
