package soa_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/soa-shop/soa/plugins/go/internal/gen/client_echo"
	"github.com/soa-shop/soa/plugins/go/soa"
)

// headerHandler is EchoService over THeader, refusing as a soa server does: echo returns the
// call's info headers as JSON; bump and ping answer soa-error wrong-target or late when told to.
type headerHandler struct {
	echoHandler
	refuse string // "", "wrong-target" or "late"
}

func (h *headerHandler) Echo(ctx context.Context, _ string) (string, error) {
	got := map[string]string{}
	for _, key := range thrift.GetReadHeaderList(ctx) {
		got[key], _ = thrift.GetHeader(ctx, key)
	}
	out, _ := json.Marshal(got)
	return string(out), nil
}

func (h *headerHandler) refused(ctx context.Context) error {
	if h.refuse == "" {
		return nil
	}
	helper, _ := thrift.GetResponseHelper(ctx)
	helper.SetHeader("soa-error", h.refuse)
	return thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "refused: "+h.refuse)
}

func (h *headerHandler) Bump(ctx context.Context, key string) (int64, error) {
	if err := h.refused(ctx); err != nil {
		return 0, err
	}
	return h.echoHandler.Bump(ctx, key)
}

func (h *headerHandler) Ping(ctx context.Context) error {
	if err := h.refused(ctx); err != nil {
		return err
	}
	return h.echoHandler.Ping(ctx)
}

// startTHeaderEcho serves h over THeader (binary payloads) and returns its instance, which
// advertises "theader": true and the id given.
func startTHeaderEcho(t testing.TB, h *headerHandler, id string) soa.Instance {
	t.Helper()
	sock, err := thrift.NewTServerSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Listen(); err != nil {
		t.Fatal(err)
	}
	port := sock.Addr().(*net.TCPAddr).Port
	h.port = int32(port)
	server := thrift.NewTSimpleServer4(client_echo.NewEchoServiceProcessor(h), sock,
		thrift.NewTHeaderTransportFactoryConf(nil, nil), thrift.NewTHeaderProtocolFactoryConf(nil))
	go func() { _ = server.Serve() }()
	t.Cleanup(func() { _ = server.Stop() })
	in, err := soa.ParseInstance([]byte(`{"service":"echo","host":"127.0.0.1","port":`+strconv.Itoa(port)+
		`,"theader":true,"id":"`+id+`"}`), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestTHeaderCarriesTheDeadlineAndTheTarget(t *testing.T) {
	in := startTHeaderEcho(t, &headerHandler{}, "id-1")
	c, _ := soa.NewClient("echo", soa.StaticInstances{in}, soa.ClientOptions{Caller: "tests"})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := client_echo.NewEchoServiceClient(c).Echo(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	ms, _ := strconv.Atoi(got["soa-deadline-ms"])
	if ms < 2500 || ms > 3000 || got["soa-service"] != "echo" || got["soa-instance"] != "id-1" || got["soa-caller"] != "tests" {
		t.Fatalf("headers: %v", got)
	}
}

func TestWrongTargetGoesElsewhereEvenIfNotIdempotent(t *testing.T) {
	wrong := startTHeaderEcho(t, &headerHandler{refuse: "wrong-target"}, "old")
	good := &headerHandler{}
	right := startTHeaderEcho(t, good, "new")
	c, _ := soa.NewClient("echo", soa.StaticInstances{wrong, right}, soa.ClientOptions{})
	defer c.Close()
	for range 3 {
		if _, err := client_echo.NewEchoServiceClient(c).Bump(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Instances(); len(got) != 1 || got[0].Port != right.Port {
		t.Fatalf("the wrong target is still used: %v", got)
	}
	if good.calls.Load() != 3 {
		t.Fatalf("the right instance ran %d calls, want 3", good.calls.Load())
	}
}

func TestLateIsADeadlineErrorAndNotRetried(t *testing.T) {
	a := startTHeaderEcho(t, &headerHandler{refuse: "late"}, "a")
	b := &headerHandler{}
	c, _ := soa.NewClient("echo", soa.StaticInstances{a, startTHeaderEcho(t, b, "b")},
		soa.ClientOptions{Idempotent: []string{"ping"}})
	defer c.Close()
	err := client_echo.NewEchoServiceClient(c).Ping(context.Background())
	var de *soa.DeadlineError
	if !errors.As(err, &de) || !de.Refused || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a refused DeadlineError", err)
	}
	if b.calls.Load() != 0 {
		t.Fatal("a late call was retried on another instance")
	}
}
