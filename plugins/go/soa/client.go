package soa

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// ClientOptions tune a Client. Zero values take the defaults.
type ClientOptions struct {
	ConnectTimeout time.Duration // per connection attempt; default 500ms
	CallTimeout    time.Duration // from connected to the answer read; default 5s
	// OnConnectError, when set, hears of every connection attempt that failed (the call then
	// goes on to the next instance): for logs and metrics.
	OnConnectError func(in Instance, err error)
	// EjectFor is how long an instance that refused a connection is passed over while others
	// remain (it is still tried when no other is left); default 2s, negative disables.
	EjectFor time.Duration
}

// InstanceSource is what a Client balances over: a Resolver, or any fixed list.
type InstanceSource interface {
	Instances() []Instance
}

// StaticInstances is a fixed InstanceSource (tests, or a service outside the registry).
type StaticInstances []Instance

// Instances returns the list itself.
func (s StaticInstances) Instances() []Instance { return s }

// NoInstanceError means no instance could be connected to: the set was empty (or all weights
// 0), or every instance refused. Nothing was sent.
type NoInstanceError struct {
	Service string
	Tried   []string // addresses tried, in order
	Err     error    // the connection errors, joined; nil when nothing could be tried
}

func (e *NoInstanceError) Error() string {
	if len(e.Tried) == 0 {
		return fmt.Sprintf("soa: no instance of %s available", e.Service)
	}
	return fmt.Sprintf("soa: no instance of %s reachable (tried %s): %v", e.Service,
		strings.Join(e.Tried, ", "), e.Err)
}

func (e *NoInstanceError) Unwrap() error { return e.Err }

// Client calls one service's instances. It is safe for concurrent use; each call opens its own
// connection, so a call never inherits a broken one.
type Client struct {
	service  string
	source   InstanceSource
	resolver *Resolver // owned: closed by Close
	opts     ClientOptions
	balancer *Balancer

	mu      sync.Mutex
	last    Instance
	hasLast bool
	ejected map[string]time.Time // address -> passed over until
}

// NewClient returns a Client over source; service names it in errors.
func NewClient(service string, source InstanceSource, opts ClientOptions) *Client {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 500 * time.Millisecond
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.EjectFor == 0 {
		opts.EjectFor = 2 * time.Second
	}
	return &Client{service: service, source: source, opts: opts, balancer: NewBalancer(),
		ejected: map[string]time.Time{}}
}

// Dial resolves service in reg (kept current by a watch) and returns a Client for it.
func Dial(ctx context.Context, reg *Registry, service string, opts ClientOptions) (*Client, error) {
	res, err := reg.Resolve(ctx, service)
	if err != nil {
		return nil, err
	}
	c := NewClient(service, res, opts)
	c.resolver = res
	return c, nil
}

// Close stops the Client's resolver, if it owns one.
func (c *Client) Close() {
	if c.resolver != nil {
		c.resolver.Close()
	}
}

// LastInstance is the instance that served the most recent call (false before the first).
func (c *Client) LastInstance() (Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.hasLast
}

// Call picks an instance, connects with its protocol and transport, and runs fn with a Thrift
// client for it (pass it to the generated New<Service>Client). A connection that cannot be
// made is retried on the next instance, until every instance has been tried; fn runs at most
// once, and its error is returned as is. The call, fn included, must end within CallTimeout.
// An instance that refused is passed over for EjectFor while other instances remain.
func (c *Client) Call(ctx context.Context, fn func(ctx context.Context, client thrift.TClient) error) error {
	tried := map[string]bool{}
	var order []string
	var errs []error
	for {
		set := c.source.Instances()
		in, ok := c.balancer.Pick(set, c.passOver(tried))
		if !ok {
			in, ok = c.balancer.Pick(set, tried) // only ejected ones are left: try them too
		}
		if !ok {
			return &NoInstanceError{Service: c.service, Tried: order, Err: errors.Join(errs...)}
		}
		addr := in.Address()
		conn, err := c.connect(ctx, addr)
		if err != nil && ctx.Err() != nil {
			return ctx.Err() // the caller gave up; the instance is not to blame
		}
		c.mu.Lock()
		if err == nil {
			delete(c.ejected, addr)
			c.last, c.hasLast = in, true
		} else if c.opts.EjectFor > 0 {
			c.ejected[addr] = time.Now().Add(c.opts.EjectFor)
		}
		c.mu.Unlock()
		if err != nil {
			if c.opts.OnConnectError != nil {
				c.opts.OnConnectError(in, err)
			}
			tried[addr] = true
			order = append(order, addr)
			errs = append(errs, err)
			continue
		}
		return c.invoke(ctx, conn, in, fn)
	}
}

// passOver is tried plus the addresses ejected until later than now.
func (c *Client) passOver(tried map[string]bool) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	skip := make(map[string]bool, len(tried)+len(c.ejected))
	for addr, until := range c.ejected {
		if now.Before(until) {
			skip[addr] = true
		} else {
			delete(c.ejected, addr)
		}
	}
	for addr := range tried {
		skip[addr] = true
	}
	return skip
}

func (c *Client) connect(ctx context.Context, addr string) (net.Conn, error) {
	dialer := net.Dialer{Timeout: c.opts.ConnectTimeout}
	return dialer.DialContext(ctx, "tcp", addr)
}

func (c *Client) invoke(ctx context.Context, conn net.Conn, in Instance, fn func(context.Context, thrift.TClient) error) error {
	defer conn.Close()
	callCtx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	deadline, _ := callCtx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	// A cancelled ctx interrupts blocked reads and writes at once.
	stop := context.AfterFunc(callCtx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conf := &thrift.TConfiguration{ConnectTimeout: c.opts.ConnectTimeout, SocketTimeout: c.opts.CallTimeout}
	var trans thrift.TTransport = thrift.NewStreamTransportRW(conn) // buffered (bufio)
	if in.Transport == "framed" {
		trans = thrift.NewTFramedTransportConf(trans, conf)
	}
	var proto thrift.TProtocol
	if in.Protocol == "compact" {
		proto = thrift.NewTCompactProtocolConf(trans, conf)
	} else {
		proto = thrift.NewTBinaryProtocolConf(trans, conf)
	}
	return fn(callCtx, thrift.NewTStandardClient(proto, proto))
}
