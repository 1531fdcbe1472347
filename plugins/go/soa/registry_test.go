package soa

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEtcd is etcd's v3 JSON gateway, reduced to what the plugin uses: range over a prefix and
// one watch stream fed by the test.
type fakeEtcd struct {
	mu     sync.Mutex
	kvs    map[string]string
	rev    int64
	events chan string // JSON event objects for the watch stream
}

func newFakeEtcd() *fakeEtcd {
	return &fakeEtcd{kvs: map[string]string{}, rev: 1, events: make(chan string, 16)}
}

func enc(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (f *fakeEtcd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&body)
	switch r.URL.Path {
	case "/v3/kv/range":
		var key []byte
		_ = json.Unmarshal(body["key"], &key)
		f.mu.Lock()
		var items []string
		for k, v := range f.kvs {
			if strings.HasPrefix(k, string(key)) {
				items = append(items, fmt.Sprintf(`{"key":%q,"value":%q,"mod_revision":"1"}`, enc(k), enc(v)))
			}
		}
		fmt.Fprintf(w, `{"header":{"revision":"%d"},"kvs":[%s]}`, f.rev, strings.Join(items, ","))
		f.mu.Unlock()
	case "/v3/watch":
		flusher := w.(http.Flusher)
		fmt.Fprint(w, `{"result":{"header":{"revision":"1"},"created":true}}`+"\n")
		flusher.Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case e := <-f.events:
				if e == "COMPACT" { // the watch's start revision is gone: the reader lists again
					fmt.Fprint(w, `{"result":{"header":{},"canceled":true,"compact_revision":"5"}}`+"\n")
					return
				}
				fmt.Fprintf(w, `{"result":{"header":{"revision":"2"},"events":[%s]}}`+"\n", e)
				flusher.Flush()
			}
		}
	default:
		http.NotFound(w, r)
	}
}

func value(host string, port int, extra string) string {
	return fmt.Sprintf(`{"service":"catalog","host":%q,"port":%d%s}`, host, port, extra)
}

func key(host string, port int) string { return fmt.Sprintf("/t/services/catalog/%s:%d", host, port) }

func put(k, v string) string {
	return fmt.Sprintf(`{"kv":{"key":%q,"value":%q,"mod_revision":"2"}}`, enc(k), enc(v))
}

func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func hosts(ins []Instance) string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Address())
	}
	return strings.Join(out, " ")
}

func waitChange(t *testing.T, res *Resolver, ch <-chan struct{}, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for hosts(res.Instances()) != want {
		select {
		case <-ch:
			ch = res.Changed()
		case <-deadline:
			t.Fatalf("instances %q, want %q", hosts(res.Instances()), want)
		}
	}
}

func TestResolveFailsOverAndWatches(t *testing.T) {
	fake := newFakeEtcd()
	fake.kvs[key("10.0.0.1", 1)] = value("10.0.0.1", 1, "")
	fake.kvs[key("10.0.0.2", 2)] = value("10.0.0.2", 2, `,"protocol":"compact"`)
	fake.kvs[key("10.0.0.3", 3)] = `{"service":"catalog","host":"10.0.0.3","port":"3"}`
	srv := httptest.NewServer(fake)
	defer srv.Close()
	var logs bytes.Buffer
	reg := NewRegistry(RegistryConfig{Endpoints: []string{deadEndpoint(t), srv.URL}, Prefix: "/t",
		Logger: log.New(&logs, "", 0)})

	ctx := context.Background()
	listed, err := reg.List(ctx, "catalog")
	if err != nil || hosts(listed) != "10.0.0.1:1 10.0.0.2:2" {
		t.Fatalf("list: %q %v", hosts(listed), err)
	}
	res, err := reg.Resolve(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if got := hosts(res.Instances()); got != "10.0.0.1:1 10.0.0.2:2" {
		t.Fatalf("resolve: %q", got)
	}
	if res.Instances()[1].Protocol != "compact" {
		t.Fatalf("protocol not parsed: %+v", res.Instances()[1])
	}
	if !strings.Contains(logs.String(), "bad_type") {
		t.Fatalf("no warning for the invalid value: %q", logs.String())
	}

	ch := res.Changed()
	fake.events <- put(key("10.0.0.4", 4), value("10.0.0.4", 4, ""))
	waitChange(t, res, ch, "10.0.0.1:1 10.0.0.2:2 10.0.0.4:4")

	ch = res.Changed()
	fake.events <- fmt.Sprintf(`{"type":"DELETE","kv":{"key":%q,"mod_revision":"3"}}`, enc(key("10.0.0.1", 1)))
	waitChange(t, res, ch, "10.0.0.2:2 10.0.0.4:4")

	ch = res.Changed()
	fake.events <- put(key("10.0.0.2", 2), value("10.0.0.2", 2, `,"leaving":true`))
	waitChange(t, res, ch, "10.0.0.4:4")

	// an invalid update of a valid key removes it, and never stops the watch
	ch = res.Changed()
	fake.events <- put(key("10.0.0.4", 4), "not json")
	waitChange(t, res, ch, "")
	ch = res.Changed()
	fake.events <- put(key("10.0.0.5", 5), value("10.0.0.5", 5, ""))
	waitChange(t, res, ch, "10.0.0.5:5")

	// a change the watch missed is found by the list after a compaction
	fake.mu.Lock()
	fake.kvs = map[string]string{key("10.0.0.6", 6): value("10.0.0.6", 6, "")}
	fake.mu.Unlock()
	ch = res.Changed()
	fake.events <- "COMPACT"
	waitChange(t, res, ch, "10.0.0.6:6")
}

func TestResolveFailsWhenNoEndpointAnswers(t *testing.T) {
	reg := NewRegistry(RegistryConfig{Endpoints: []string{deadEndpoint(t)}, DialTimeout: time.Second})
	if _, err := reg.Resolve(context.Background(), "catalog"); err == nil {
		t.Fatal("resolved without etcd")
	}
}

func TestRangeEnd(t *testing.T) {
	if got := string(rangeEnd("/soa/services/a/")); got != "/soa/services/a0" {
		t.Fatalf("got %q", got)
	}
}
