package soa

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

func listening(t *testing.T) (Instance, net.Listener) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return Instance{Service: "s", Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, Weight: 100,
		Protocol: "binary", Transport: "buffered"}, l
}

func TestCallFailsOverOnRefusedConnection(t *testing.T) {
	alive, l := listening(t)
	defer l.Close()
	dead := alive
	dead.Port, _ = strconv.Atoi(deadEndpoint(t)[len("127.0.0.1:"):])
	refused := 0
	c := NewClient("s", StaticInstances{dead, alive}, ClientOptions{
		OnConnectError: func(Instance, error) { refused++ },
	})
	for i := 0; i < 6; i++ {
		calls := 0
		err := c.Call(context.Background(), func(ctx context.Context, _ thrift.TClient) error {
			calls++
			return nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("call %d: %v (fn ran %d times)", i, err, calls)
		}
		if last, ok := c.LastInstance(); !ok || last.Port != alive.Port {
			t.Fatalf("served by %+v", last)
		}
	}
	if refused != 1 {
		t.Fatalf("the dead instance was tried %d times; ejected, it should be tried once", refused)
	}
}

func TestEjectedInstanceIsStillTriedWhenAlone(t *testing.T) {
	alive, l := listening(t)
	defer l.Close()
	c := NewClient("s", StaticInstances{alive}, ClientOptions{})
	c.ejected[alive.Address()] = time.Now().Add(time.Hour)
	if err := c.Call(context.Background(), func(context.Context, thrift.TClient) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, still := c.ejected[alive.Address()]; still {
		t.Fatal("a successful connection did not clear the ejection")
	}
}

func TestCallNoInstance(t *testing.T) {
	dead := Instance{Service: "s", Host: "127.0.0.1", Weight: 1}
	dead.Port, _ = strconv.Atoi(deadEndpoint(t)[len("127.0.0.1:"):])
	c := NewClient("s", StaticInstances{dead}, ClientOptions{})
	err := c.Call(context.Background(), func(context.Context, thrift.TClient) error {
		t.Fatal("fn ran without a connection")
		return nil
	})
	var ni *NoInstanceError
	if !errors.As(err, &ni) || len(ni.Tried) != 1 {
		t.Fatalf("got %v", err)
	}
	err = NewClient("s", StaticInstances{}, ClientOptions{}).Call(context.Background(),
		func(context.Context, thrift.TClient) error { return nil })
	if !errors.As(err, &ni) || len(ni.Tried) != 0 {
		t.Fatalf("empty set: got %v", err)
	}
}

func TestCallTimeoutBoundsTheCall(t *testing.T) {
	alive, l := listening(t)
	defer l.Close()
	c := NewClient("s", StaticInstances{alive}, ClientOptions{CallTimeout: 100 * time.Millisecond})
	start := time.Now()
	err := c.Call(context.Background(), func(ctx context.Context, _ thrift.TClient) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
}
