package soa

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// gateway talks to etcd's v3 JSON gateway (POST /v3/kv/range, POST /v3/watch) over plain HTTP.
// A request that cannot reach an endpoint goes to the next one; the endpoint that answered last
// is tried first next time.
type gateway struct {
	endpoints []string // base URLs, "http://host:port"
	http      *http.Client
	timeout   time.Duration

	mu      sync.Mutex
	current int
}

type kv struct {
	Key         []byte
	Value       []byte
	ModRevision int64
}

type watchEvent struct {
	Delete bool
	KV     kv
}

// errCompacted means the watch's start revision was compacted: list again.
var errCompacted = errors.New("etcd: the watch's start revision was compacted")

func newGateway(endpoints []string, timeout time.Duration) *gateway {
	urls := make([]string, 0, len(endpoints))
	for _, e := range endpoints {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		urls = append(urls, e)
	}
	// etcd is dialled directly: no HTTP proxy from the environment.
	// A watch has no overall timeout, but its response headers must come within timeout.
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
		ResponseHeaderTimeout: timeout, DialContext: (&net.Dialer{Timeout: timeout}).DialContext}
	return &gateway{endpoints: urls, http: &http.Client{Transport: transport}, timeout: timeout}
}

// do posts body to path on each endpoint in turn, from the last one that answered, until one
// answers 200; it returns that response and the cancel func of its context (a list request is
// bounded by the gateway's timeout, a watch stream only by ctx).
func (g *gateway) do(ctx context.Context, path string, body any, stream bool) (*http.Response, context.CancelFunc, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	if len(g.endpoints) == 0 {
		return nil, nil, errors.New("etcd: no endpoints configured")
	}
	g.mu.Lock()
	start := g.current
	g.mu.Unlock()
	var errs []error
	for n := 0; n < len(g.endpoints); n++ {
		i := (start + n) % len(g.endpoints)
		var reqCtx context.Context
		var cancel context.CancelFunc
		if stream {
			reqCtx, cancel = context.WithCancel(ctx)
		} else {
			reqCtx, cancel = context.WithTimeout(ctx, g.timeout)
		}
		req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, g.endpoints[i]+path, bytes.NewReader(payload))
		if err != nil {
			cancel()
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := g.http.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		}
		if err != nil {
			cancel()
			errs = append(errs, fmt.Errorf("%s: %w", g.endpoints[i], err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		g.mu.Lock()
		g.current = i
		g.mu.Unlock()
		return resp, cancel, nil
	}
	return nil, nil, fmt.Errorf("etcd unreachable: %w", errors.Join(errs...))
}

type jsonKV struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	ModRevision string `json:"mod_revision"`
}

func (j jsonKV) decode() (kv, error) {
	key, err := base64.StdEncoding.DecodeString(j.Key)
	if err != nil {
		return kv{}, err
	}
	value, err := base64.StdEncoding.DecodeString(j.Value)
	if err != nil {
		return kv{}, err
	}
	rev, _ := strconv.ParseInt(j.ModRevision, 10, 64)
	return kv{Key: key, Value: value, ModRevision: rev}, nil
}

type jsonHeader struct {
	Revision string `json:"revision"`
}

func (h jsonHeader) revision() int64 {
	r, _ := strconv.ParseInt(h.Revision, 10, 64)
	return r
}

// rangeEnd is the end of the range holding every key that starts with prefix.
func rangeEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

func b64(s []byte) string { return base64.StdEncoding.EncodeToString(s) }

// rangePrefix lists every key under prefix and the store's revision at that moment.
func (g *gateway) rangePrefix(ctx context.Context, prefix string) ([]kv, int64, error) {
	body := map[string]string{"key": b64([]byte(prefix)), "range_end": b64(rangeEnd(prefix))}
	resp, cancel, err := g.do(ctx, "/v3/kv/range", body, false)
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	var out struct {
		Header jsonHeader `json:"header"`
		KVs    []jsonKV   `json:"kvs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, 0, fmt.Errorf("etcd range: %w", err)
	}
	kvs := make([]kv, 0, len(out.KVs))
	for _, j := range out.KVs {
		item, err := j.decode()
		if err != nil {
			return nil, 0, fmt.Errorf("etcd range: %w", err)
		}
		kvs = append(kvs, item)
	}
	return kvs, out.Header.revision(), nil
}

// watchPrefix streams the changes under prefix from revision fromRev to onEvents until ctx ends
// or the stream breaks (it then returns the error; errCompacted when fromRev is gone).
func (g *gateway) watchPrefix(ctx context.Context, prefix string, fromRev int64, onEvents func([]watchEvent)) error {
	body := map[string]any{"create_request": map[string]any{
		"key": b64([]byte(prefix)), "range_end": b64(rangeEnd(prefix)),
		"start_revision": strconv.FormatInt(fromRev, 10),
	}}
	resp, cancel, err := g.do(ctx, "/v3/watch", body, true)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var msg struct {
			Result *struct {
				Header          jsonHeader `json:"header"`
				Canceled        bool       `json:"canceled"`
				CompactRevision string     `json:"compact_revision"`
				CancelReason    string     `json:"cancel_reason"`
				Events          []struct {
					Type string `json:"type"`
					KV   jsonKV `json:"kv"`
				} `json:"events"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("etcd watch: %w", err)
		}
		if msg.Error != nil {
			return fmt.Errorf("etcd watch: %s", msg.Error.Message)
		}
		r := msg.Result
		if r == nil {
			continue
		}
		if c, _ := strconv.ParseInt(r.CompactRevision, 10, 64); c > 0 {
			return errCompacted
		}
		if r.Canceled {
			return fmt.Errorf("etcd watch canceled: %s", r.CancelReason)
		}
		if len(r.Events) == 0 {
			continue
		}
		events := make([]watchEvent, 0, len(r.Events))
		for _, e := range r.Events {
			item, err := e.KV.decode()
			if err != nil {
				return fmt.Errorf("etcd watch: %w", err)
			}
			events = append(events, watchEvent{Delete: e.Type == "DELETE", KV: item})
		}
		onEvents(events)
	}
}
