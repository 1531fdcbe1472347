package soa

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// The IDL mismatch policies (ClientOptions.IDLMismatch), as the Python client's
// client.idl_mismatch: an instance whose registry idl_hash differs from the client's is used
// with one warning (IDLWarn) or left out (IDLExclude). An empty hash on either side is unknown and
// always used.
const (
	IDLWarn    = "warn"
	IDLExclude = "exclude"
)

// ClientOptions tune a Client. Zero values take the defaults.
type ClientOptions struct {
	Balancer   string   // one of RoundRobin (default), WeightedRoundRobin, WeightedRandom, LeastInFlight, ConsistentHash
	Idempotent []string // IDL method names that may be retried after the request was sent
	// Retries is how many times a sent idempotent call may be retried, each paid from the retry
	// budget; default 2, negative: never. Calls that were not sent always go on to the next
	// instance (up to 3 more).
	Retries int
	// BudgetRatio is the retry tokens each call earns (default 0.1: retries add at most 10% to the
	// load); BudgetMinPerSecond the retries allowed anyway each second (default 10).
	BudgetRatio         float64
	BudgetMinPerSecond  float64       // see BudgetRatio
	ConnectTimeout      time.Duration // per dial (TCP and TLS); default 500ms
	CallTimeout         time.Duration // deadline of a call whose context has none; default 5s
	MaxConnsPerInstance int           // pool bound per instance; default 32
	PoolIdleTimeout     time.Duration // an idle pooled connection is closed after it; default 60s
	MaxFrameBytes       int32         // largest reply accepted; default 16 MiB
	IDLHash             string        // this client's idl_hash: the SoaIDLHash constant `soa gen` writes
	IDLMismatch         string        // IDLWarn (default) or IDLExclude
	// EjectAfter consecutive failures (connect errors and timeouts) eject an instance for
	// EjectBase*2^(n-1) (n: ejections in a row, at most EjectMax); then a ping probe readmits it.
	// The last usable instance is never ejected. Defaults 3, 500ms, 30s; EjectAfter < 0 disables.
	EjectAfter int
	EjectBase  time.Duration // the first ejection's length
	EjectMax   time.Duration // the longest ejection
	TLS        *TLSFiles     // for instances that advertise "tls": true (CA, client cert and key)
	Caller     string        // this program's service name, sent as soa-caller over THeader
	Logger     *log.Logger   // warnings (IDL mismatch, ejections); default log.Default()
	// OnAttempt, when set, hears of every attempt (each retry is one): for logs and metrics. It
	// runs in the calling goroutine and must not block.
	OnAttempt func(Attempt)
}

// Attempt is one try of a call on one instance, as reported to ClientOptions.OnAttempt.
type Attempt struct {
	Method   string        // the IDL method name
	Instance Instance      // the instance tried
	Reused   bool          // the call went over a pooled connection
	Err      error         // nil on success; a TApplicationException is an answer, not a failure
	Duration time.Duration // from picking the connection to the reply
}

// InstanceSource is what a Client balances over: a *Resolver, or a fixed StaticInstances.
// Changed returns a channel closed at the next change (nil: never changes).
type InstanceSource interface {
	Instances() []Instance
	Changed() <-chan struct{}
}

// StaticInstances is a fixed InstanceSource (tests, or a service outside the registry).
type StaticInstances []Instance

// Instances returns the list itself.
func (s StaticInstances) Instances() []Instance { return s }

// Changed returns nil: the list never changes.
func (s StaticInstances) Changed() <-chan struct{} { return nil }

// Client calls one service's instances; it implements thrift.TClient, so the generated
// New<Service>Client takes it directly. It is safe for concurrent use. Close releases its
// pools and the resolver it owns.
type Client struct {
	service    string
	opts       ClientOptions
	idempotent map[string]bool
	budget     *retryBudget
	resolver   *Resolver // owned: closed by Close
	ctx        context.Context
	stop       context.CancelFunc
	done       chan struct{}

	state atomic.Pointer[pickState]

	mu      sync.Mutex
	order   []string             // the registry's addresses, in key order
	eps     map[string]*endpoint // by address
	ejected map[string]bool
	warned  map[string]bool // address+hash already warned about
}

// endpoint is one instance of the current set, with its pool and the call state kept for it.
type endpoint struct {
	in       Instance
	addr     string
	dialer   *dialer
	pool     *pool
	inflight atomic.Int64
	strikes  int  // consecutive failures (under Client.mu)
	streak   int  // ejections in a row (under Client.mu)
	wrong    bool // it answered wrong-target: left out until its registry value changes
	gone     bool // it left the registry
}

type pickState struct {
	picker picker
	reason string // why nothing is usable, when nothing is
}

// NewClient returns a Client of service over source. Options are checked here: an unknown
// balancer or IDL policy is an error.
func NewClient(service string, source InstanceSource, opts ClientOptions) (*Client, error) {
	opts = withDefaults(opts)
	if _, err := newPicker(opts.Balancer, nil); err != nil {
		return nil, err
	}
	if opts.IDLMismatch != IDLWarn && opts.IDLMismatch != IDLExclude {
		return nil, fmt.Errorf("soa: IDLMismatch: want %q or %q, got %q", IDLWarn, IDLExclude, opts.IDLMismatch)
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Client{service: service, opts: opts, idempotent: map[string]bool{},
		budget: newRetryBudget(opts.BudgetRatio, opts.BudgetMinPerSecond), ctx: ctx, stop: stop,
		done: make(chan struct{}), eps: map[string]*endpoint{}, ejected: map[string]bool{},
		warned: map[string]bool{}}
	for _, m := range opts.Idempotent {
		c.idempotent[m] = true
	}
	changed := source.Changed()
	c.update(source.Instances())
	go c.follow(source, changed)
	return c, nil
}

func withDefaults(o ClientOptions) ClientOptions {
	if o.Balancer == "" {
		o.Balancer = RoundRobin
	}
	if o.Retries == 0 {
		o.Retries = 2
	}
	if o.BudgetRatio <= 0 {
		o.BudgetRatio = 0.1
	}
	if o.BudgetMinPerSecond <= 0 {
		o.BudgetMinPerSecond = 10
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 500 * time.Millisecond
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.MaxConnsPerInstance <= 0 {
		o.MaxConnsPerInstance = 32
	}
	if o.PoolIdleTimeout <= 0 {
		o.PoolIdleTimeout = 60 * time.Second
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 16 << 20
	}
	if o.IDLMismatch == "" {
		o.IDLMismatch = IDLWarn
	}
	if o.EjectAfter == 0 {
		o.EjectAfter = 3
	}
	if o.EjectBase <= 0 {
		o.EjectBase = 500 * time.Millisecond
	}
	if o.EjectMax <= 0 {
		o.EjectMax = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = log.Default()
	}
	return o
}

// Dial resolves service in reg (kept current by a watch) and returns a Client for it; Close
// stops the watch too. It fails when the first list fails or opts are invalid.
func Dial(ctx context.Context, reg *Registry, service string, opts ClientOptions) (*Client, error) {
	res, err := reg.Resolve(ctx, service)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(service, res, opts)
	if err != nil {
		res.Close()
		return nil, err
	}
	c.resolver = res
	return c, nil
}

// Close stops following the instance set, closes every pool (calls in flight finish, their
// connections are closed after) and the resolver the Client owns.
func (c *Client) Close() {
	c.stop()
	<-c.done
	c.mu.Lock()
	for _, ep := range c.eps {
		ep.gone = true
		ep.pool.close()
	}
	c.mu.Unlock()
	if c.resolver != nil {
		c.resolver.Close()
	}
}

// follow applies every change of the set until Close.
func (c *Client) follow(source InstanceSource, changed <-chan struct{}) {
	defer close(c.done)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-changed:
		}
		changed = source.Changed()
		c.update(source.Instances())
	}
}

// update makes set the current one: endpoints that stay keep their pools and state; those that
// left (or whose value changed) have their pools closed.
func (c *Client) update(set []Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := make(map[string]*endpoint, len(set))
	order := make([]string, 0, len(set))
	for _, in := range set {
		addr := in.Address()
		ep := c.eps[addr]
		if ep == nil || !reflect.DeepEqual(ep.in, in) {
			d := &dialer{service: c.service, caller: c.opts.Caller, in: in,
				timeout: c.opts.ConnectTimeout, tls: c.opts.TLS, maxFrame: c.opts.MaxFrameBytes}
			ep = &endpoint{in: in, addr: addr, dialer: d,
				pool: newPool(d, c.opts.MaxConnsPerInstance, c.opts.PoolIdleTimeout)}
			delete(c.ejected, addr)
		}
		fresh[addr] = ep
		order = append(order, addr)
	}
	for addr, ep := range c.eps {
		if fresh[addr] != ep {
			ep.gone = true
			ep.pool.close()
			if fresh[addr] == nil {
				delete(c.ejected, addr)
			}
		}
	}
	c.eps, c.order = fresh, order
	c.rebuild()
}

// rebuild swaps in a picker over the usable endpoints (under c.mu).
func (c *Client) rebuild() {
	usable := c.usable()
	p, _ := newPicker(c.opts.Balancer, usable)
	st := &pickState{picker: p}
	switch {
	case len(c.order) == 0:
		st.reason = "no instances registered"
	case len(usable) == 0:
		st.reason = fmt.Sprintf("none of the %d registered instance(s) can take calls (IDL mismatch, weight 0, ejected or wrong target)", len(c.order))
	}
	c.state.Store(st)
}

func (c *Client) acceptIDL(in Instance) bool {
	mine := c.opts.IDLHash
	if in.IDLHash == "" || mine == "" || in.IDLHash == mine {
		return true
	}
	exclude := c.opts.IDLMismatch == IDLExclude
	if mark := in.Address() + " " + in.IDLHash; !c.warned[mark] {
		c.warned[mark] = true
		what := "using it anyway"
		if exclude {
			what = "excluding it (idl_mismatch: exclude)"
		}
		c.opts.Logger.Printf("soa: %s: %s serves IDL %s but this client has %s; %s",
			c.service, in.Address(), in.IDLHash, mine, what)
	}
	return !exclude
}

// Instances is the set the Client currently balances over: the registry's, less instances of
// weight 0, excluded by the IDL policy, ejected or answering wrong-target.
func (c *Client) Instances() []Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []Instance{}
	for _, ep := range c.usable() {
		out = append(out, ep.in)
	}
	return out
}

// PoolStats is the connections dialled so far to each current instance, by address: a call
// that reuses a pooled connection dials none.
func (c *Client) PoolStats() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.eps))
	for addr, ep := range c.eps {
		out[addr], _ = ep.pool.stats()
	}
	return out
}

// isTimeout tells a deadline (the context's, or the socket's set from it) from other failures.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

var _ thrift.TClient = (*Client)(nil)
