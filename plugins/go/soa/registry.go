package soa

import (
	"context"
	"errors"
	"fmt"
	"log"
	"reflect"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RegistryConfig says where the registry is and how to reach it. Zero values take the defaults.
type RegistryConfig struct {
	// Endpoints are etcd client URLs or host:port pairs; default 127.0.0.1:2379. The etcd client
	// fails over between them.
	Endpoints []string
	// Prefix is the registry key prefix; default "/soa".
	Prefix string
	// DialTimeout bounds the first list of Resolve and each List; default 2s.
	DialTimeout time.Duration
	// Username and Password authenticate to an etcd with auth enabled (etcd.user and
	// etcd.password in soa.yaml). Empty means no authentication.
	Username string
	Password string // never logged
	// TLS, when set, dials etcd over TLS (etcd.tls in soa.yaml).
	TLS *TLSFiles
	// Logger hears warnings about skipped registry values; default log.Default().
	Logger *log.Logger
}

// Registry reads soa registrations from etcd with the official client (go.etcd.io/etcd/client/v3).
// It is safe for concurrent use; Close releases its etcd connection.
type Registry struct {
	prefix  string
	timeout time.Duration
	etcd    *clientv3.Client
	logger  *log.Logger
}

// NewRegistry returns a Registry for cfg. It does not wait for etcd: an unreachable etcd shows
// up as an error of the first List or Resolve. Bad TLS files are an error here.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
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
	etcdCfg := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               quietLogger(),
	}
	if cfg.TLS != nil {
		tlsCfg, err := cfg.TLS.config("")
		if err != nil {
			return nil, fmt.Errorf("soa: etcd tls: %w", err)
		}
		etcdCfg.TLS = tlsCfg
	}
	cli, err := clientv3.New(etcdCfg)
	if err != nil {
		return nil, &DiscoveryError{Op: "connect to etcd", Err: err}
	}
	return &Registry{prefix: cfg.Prefix, timeout: cfg.DialTimeout, etcd: cli, logger: cfg.Logger}, nil
}

// Close closes the etcd connection; Resolvers of this Registry stop updating.
func (r *Registry) Close() error { return r.etcd.Close() }

// List returns the live instances of service (invalid and leaving values skipped, each invalid
// one with a warning), sorted by address. It fails when etcd does not answer within DialTimeout.
func (r *Registry) List(ctx context.Context, service string) ([]Instance, error) {
	m := newMirror(r.prefix, r.logger)
	if _, err := r.list(ctx, ServicePrefix(r.prefix, service), m); err != nil {
		return nil, err
	}
	return m.snapshot(), nil
}

func (r *Registry) list(ctx context.Context, prefix string, m *mirror) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := r.etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, &DiscoveryError{Op: "list " + prefix, Err: err}
	}
	m.reset(resp.Kvs)
	return resp.Header.Revision, nil
}

// Resolve lists service's instances and keeps them current with a watch until the Resolver is
// closed. It fails only when etcd cannot be reached for the first list; after that, while etcd
// is unreachable, the Resolver keeps the last set it knew and resumes when etcd returns.
func (r *Registry) Resolve(ctx context.Context, service string) (*Resolver, error) {
	prefix := ServicePrefix(r.prefix, service)
	res := &Resolver{service: service, mirror: newMirror(r.prefix, r.logger), done: make(chan struct{})}
	rev, err := r.list(ctx, prefix, res.mirror)
	if err != nil {
		return nil, err
	}
	res.publish()
	wctx, cancel := context.WithCancel(context.Background())
	res.cancel = cancel
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

// Service is the service name this Resolver follows.
func (res *Resolver) Service() string { return res.service }

// Instances is the current set: every valid, non-leaving instance, sorted by address (the
// registry's key order). While etcd is unreachable it stays the last set known (stale beats
// empty). The slice is shared: do not modify it.
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

// Close stops the watch and waits for it to end.
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

// run watches from rev+1. The etcd client itself reconnects a broken stream and resumes from
// the last revision it delivered; when the start revision was compacted (or the watch was
// cancelled) the range is listed again, with backoff while etcd is unreachable.
func (res *Resolver) run(ctx context.Context, r *Registry, prefix string, rev int64) {
	defer close(res.done)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		watch := r.etcd.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range watch {
			if err := resp.Err(); err != nil {
				if !errors.Is(err, rpctypes.ErrCompacted) && resp.CompactRevision == 0 {
					r.logger.Printf("soa: watch of %s ended: %v; listing again", prefix, err)
				}
				break
			}
			if len(resp.Events) == 0 {
				continue
			}
			res.mirror.apply(resp.Events)
			rev = resp.Header.Revision
			res.publish()
			delay = 100 * time.Millisecond
		}
		cancel()
		for ctx.Err() == nil {
			var err error
			if rev, err = r.list(ctx, prefix, res.mirror); err == nil {
				res.publish()
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(delay*2, 5*time.Second)
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

func (m *mirror) reset(kvs []*mvccpb.KeyValue) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = map[string]Instance{}
	for _, item := range kvs {
		m.put(item)
	}
}

func (m *mirror) apply(events []*clientv3.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events {
		if e.Type == clientv3.EventTypeDelete {
			delete(m.entries, string(e.Kv.Key))
		} else {
			m.put(e.Kv)
		}
	}
}

func (m *mirror) put(item *mvccpb.KeyValue) {
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
