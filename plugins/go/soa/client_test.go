package soa_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
	"github.com/soa-shop/soa/plugins/go/soa"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func instanceAt(t *testing.T, addr string) soa.Instance {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	in, err := soa.ParseInstance([]byte(`{"service":"echo","host":"`+host+`","port":`+port+`}`), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// A listener that accepts and closes every connection at once: a request sent to it is lost.
func dropping(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1)
			_, _ = c.Read(buf)
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestPoolReusesConnectionsAndClosesThoseOfInstancesThatLeave(t *testing.T) {
	prefix := testPrefix()
	a, b := startEcho(prefix), startEcho(prefix)
	defer a.stop()
	reg, err := soa.NewRegistry(soa.RegistryConfig{Endpoints: []string{testEtcd()}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	client, err := soa.Dial(ctx, reg, "echo", soa.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	echo := client_echo.NewEchoServiceClient(client)
	for range 20 {
		if _, err := echo.Whoami(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stats := client.PoolStats()
	if stats[a.addr] != 1 || stats[b.addr] != 1 {
		t.Fatalf("20 sequential calls dialled %v, want one connection per instance", stats)
	}
	b.stop()
	waitFor(t, "b to leave", func() bool { return len(client.Instances()) == 1 })
	if _, ok := client.PoolStats()[b.addr]; ok {
		t.Fatal("the pool of the instance that left is still there")
	}
	for range 5 {
		if port, err := echo.Whoami(ctx); err != nil || port != a.handler.port {
			t.Fatalf("got %d, %v", port, err)
		}
	}
}

func TestConnectFailureGoesToTheNextInstanceAndSentCallsRetryOnlyIfIdempotent(t *testing.T) {
	prefix := testPrefix()
	live := startEcho(prefix)
	defer live.stop()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	ctx := context.Background()

	refused := soa.StaticInstances{instanceAt(t, deadAddr), instanceAt(t, live.addr)}
	c, _ := soa.NewClient("echo", refused, soa.ClientOptions{})
	defer c.Close()
	for range 4 { // bump is not idempotent: it may still go on, as it was never sent
		if _, err := client_echo.NewEchoServiceClient(c).Bump(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}

	lost := soa.StaticInstances{instanceAt(t, dropping(t)), instanceAt(t, live.addr)}
	c2, _ := soa.NewClient("echo", lost, soa.ClientOptions{Idempotent: []string{"echo"}, EjectAfter: -1})
	defer c2.Close()
	echo := client_echo.NewEchoServiceClient(c2)
	_, err := echo.Bump(ctx, "k") // round robin: the dropping instance first
	var te *soa.TransportError
	if !errors.As(err, &te) || !te.Sent {
		t.Fatalf("a sent non-idempotent call: got %v, want a sent TransportError", err)
	}
	if _, err := echo.Bump(ctx, "k"); err != nil { // the live one
		t.Fatal(err)
	}
	for range 4 {
		if msg, err := echo.Echo(ctx, "x"); err != nil || msg != "x" {
			t.Fatalf("an idempotent call was not retried: %q %v", msg, err)
		}
	}
}

func TestOutlierIsEjected(t *testing.T) {
	prefix := testPrefix()
	live := startEcho(prefix)
	defer live.stop()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	c, _ := soa.NewClient("echo", soa.StaticInstances{instanceAt(t, deadAddr), instanceAt(t, live.addr)},
		soa.ClientOptions{EjectBase: time.Minute})
	defer c.Close()
	attempts := 0
	ctx := context.Background()
	for range 10 {
		if err := client_echo.NewEchoServiceClient(c).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Instances(); len(got) != 1 || got[0].Address() != live.addr {
		t.Fatalf("after 3 refusals the dead instance should be ejected; usable: %v (%d)", got, attempts)
	}
}

func TestCancelledContextStopsTheCall(t *testing.T) {
	prefix := testPrefix()
	live := startEcho(prefix)
	defer live.stop()
	c, _ := soa.NewClient("echo", soa.StaticInstances{instanceAt(t, live.addr)}, soa.ClientOptions{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	started := time.Now()
	_, err := client_echo.NewEchoServiceClient(c).Slow(ctx, 2000)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(started) > time.Second {
		t.Fatalf("got %v after %s", err, time.Since(started))
	}
}

// A context that is never done (context.Background) gets CallTimeout as its deadline: on the
// wire, and while waiting for a free connection.
func TestCallTimeoutBoundsCallsWhoseContextHasNoDeadline(t *testing.T) {
	prefix := testPrefix()
	live := startEcho(prefix)
	defer live.stop()
	c, _ := soa.NewClient("echo", soa.StaticInstances{instanceAt(t, live.addr)},
		soa.ClientOptions{CallTimeout: 100 * time.Millisecond, MaxConnsPerInstance: 1})
	defer c.Close()
	echo := client_echo.NewEchoServiceClient(c)
	ctx := context.Background()

	started := time.Now()
	_, err := echo.Slow(ctx, 2000)
	var de *soa.DeadlineError
	if !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) || time.Since(started) > time.Second {
		t.Fatalf("on the wire: got %v after %s", err, time.Since(started))
	}

	hold, release := context.WithTimeout(context.Background(), 10*time.Second)
	defer release()
	busy := make(chan error, 1)
	go func() { // holds the only connection for longer than CallTimeout
		_, err := echo.Slow(hold, 5000)
		busy <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); live.handler.slowStarted.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the slow call never reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	started = time.Now()
	err = echo.Ping(ctx) // waits for the busy connection, until its CallTimeout
	if !errors.As(err, &de) || time.Since(started) < 90*time.Millisecond || time.Since(started) > time.Second {
		t.Fatalf("waiting for a connection: got %v after %s", err, time.Since(started))
	}
	release()
	if err := <-busy; !errors.Is(err, context.Canceled) {
		t.Fatalf("the held call, cancelled: %v", err)
	}
}

// A context that can be cancelled but has no deadline gets CallTimeout, and cancelling it
// ends the call at once.
func TestCancellingAContextWithoutDeadlineStopsTheCall(t *testing.T) {
	prefix := testPrefix()
	live := startEcho(prefix)
	defer live.stop()
	c, _ := soa.NewClient("echo", soa.StaticInstances{instanceAt(t, live.addr)}, soa.ClientOptions{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	started := time.Now()
	_, err := client_echo.NewEchoServiceClient(c).Slow(ctx, 2000)
	if !errors.Is(err, context.Canceled) || time.Since(started) > time.Second {
		t.Fatalf("got %v after %s", err, time.Since(started))
	}
}
