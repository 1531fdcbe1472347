package soa

import (
	"context"
	"errors"
	"log"
	"reflect"
	"sort"
	"sync"
	"time"
)

// RegistryConfig says where the registry is. Zero values take the defaults.
type RegistryConfig struct {
	Endpoints   []string      // etcd client URLs or host:port; default 127.0.0.1:2379
	Prefix      string        // key prefix; default "/soa"
	DialTimeout time.Duration // per list request; default 2s
	Logger      *log.Logger   // warnings about skipped values; default log.Default()
}

// Registry reads soa registrations from etcd.
type Registry struct {
	prefix string
	gw     *gateway
	logger *log.Logger
}

// NewRegistry returns a Registry for cfg; it does not connect until used.
func NewRegistry(cfg RegistryConfig) *Registry {
	if len(cfg.Endpoints) == 0 {
		cfg.Endpoints = []string{"127.0.0.1:2379"}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/soa"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	return &Registry{prefix: cfg.Prefix, gw: newGateway(cfg.Endpoints, cfg.DialTimeout), logger: cfg.Logger}
}

// List returns the live instances of service (invalid and leaving values skipped, each invalid
// one with a warning), sorted by address.
func (r *Registry) List(ctx context.Context, service string) ([]Instance, error) {
	m := newMirror(r.prefix, r.logger)
	kvs, _, err := r.gw.rangePrefix(ctx, ServicePrefix(r.prefix, service))
	if err != nil {
		return nil, err
	}
	m.reset(kvs)
	return m.snapshot(), nil
}

// Resolve lists service's instances and keeps them current with a watch until the Resolver is
// closed. It fails only when etcd cannot be reached for the first list.
func (r *Registry) Resolve(ctx context.Context, service string) (*Resolver, error) {
	prefix := ServicePrefix(r.prefix, service)
	kvs, rev, err := r.gw.rangePrefix(ctx, prefix)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	res := &Resolver{service: service, mirror: newMirror(r.prefix, r.logger), cancel: cancel,
		done: make(chan struct{})}
	res.mirror.reset(kvs)
	res.publish()
	go res.run(wctx, r, prefix, rev)
	return res, nil
}

// Resolver holds the current instance set of one service. It is safe for concurrent use.
type Resolver struct {
	service string
	mirror  *mirror
	cancel  context.CancelFunc
	done    chan struct{}

	mu        sync.RWMutex
	instances []Instance
	changed   chan struct{} // closed and replaced on every change
}

// Instances is the current set: every valid, non-leaving instance, sorted by address. While
// etcd is unreachable it stays the last set known (stale beats empty).
func (res *Resolver) Instances() []Instance {
	res.mu.RLock()
	defer res.mu.RUnlock()
	return res.instances
}

// Changed returns a channel that is closed at the next change of the set.
func (res *Resolver) Changed() <-chan struct{} {
	res.mu.RLock()
	defer res.mu.RUnlock()
	return res.changed
}

// Close stops the watch.
func (res *Resolver) Close() {
	res.cancel()
	<-res.done
}

func (res *Resolver) publish() {
	snap := res.mirror.snapshot()
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.changed != nil && reflect.DeepEqual(snap, res.instances) {
		return // a list again after a broken watch, or an update that changed nothing
	}
	res.instances = snap
	if res.changed != nil {
		close(res.changed)
	}
	res.changed = make(chan struct{})
}

// run watches from rev+1; when the stream breaks it lists again (with backoff while etcd is
// unreachable) and watches from the new revision, so no change is missed.
func (res *Resolver) run(ctx context.Context, r *Registry, prefix string, rev int64) {
	defer close(res.done)
	delay := 100 * time.Millisecond
	for {
		started := time.Now()
		err := r.gw.watchPrefix(ctx, prefix, rev+1, func(events []watchEvent) {
			res.mirror.apply(events)
			res.publish()
		})
		if time.Since(started) > 5*time.Second {
			delay = 100 * time.Millisecond // the watch was healthy for a while
		}
		for ctx.Err() == nil {
			if !errors.Is(err, errCompacted) {
				select {
				case <-ctx.Done():
				case <-time.After(delay):
				}
				delay = min(delay*2, 5*time.Second)
			}
			var kvs []kv
			if kvs, rev, err = r.gw.rangePrefix(ctx, prefix); err == nil {
				res.mirror.reset(kvs)
				res.publish()
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// mirror is the parsed content of one watched range: key -> instance.
type mirror struct {
	prefix  string
	logger  *log.Logger
	mu      sync.Mutex
	entries map[string]Instance
	warned  map[string]int64 // key -> mod revision already warned about
}

func newMirror(prefix string, logger *log.Logger) *mirror {
	return &mirror{prefix: prefix, logger: logger, entries: map[string]Instance{}, warned: map[string]int64{}}
}

func (m *mirror) reset(kvs []kv) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = map[string]Instance{}
	for _, item := range kvs {
		m.put(item)
	}
}

func (m *mirror) apply(events []watchEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events {
		if e.Delete {
			delete(m.entries, string(e.KV.Key))
		} else {
			m.put(e.KV)
		}
	}
}

func (m *mirror) put(item kv) {
	key := string(item.Key)
	in, err := ParseInstance(item.Value, key, m.prefix)
	if err != nil {
		delete(m.entries, key)
		if rev, seen := m.warned[key]; !seen || rev != item.ModRevision {
			m.warned[key] = item.ModRevision
			m.logger.Printf("soa: skipping registry value %s: %v", key, err)
		}
		return
	}
	if in.Leaving {
		delete(m.entries, key)
		return
	}
	m.entries[key] = in
}

func (m *mirror) snapshot() []Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Instance, 0, len(m.entries))
	for _, in := range m.entries {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address() < out[j].Address() })
	return out
}
