package soa

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// The THeader info keys of registry/SCHEMA.md ("Call metadata: THeader").
const (
	headerDeadline = "soa-deadline-ms"
	headerService  = "soa-service"
	headerInstance = "soa-instance"
	headerCaller   = "soa-caller"
	headerError    = "soa-error"
)

// conn is one connection to an instance with its Thrift stack: plain (the instance's protocol
// and transport) or THeader (when the instance advertises it). One call at a time uses it.
type conn struct {
	nc       net.Conn
	proto    thrift.TProtocol
	header   *headerTransport // nil for plain Thrift
	seq      int32
	lastUsed time.Time
	broken   bool // saw a transport error or a cancellation: never reused
}

// dialer opens conns to one instance.
type dialer struct {
	service, caller string
	in              Instance
	timeout         time.Duration
	tls             *TLSFiles
	maxFrame        int32
}

// dial connects within d.timeout, and before deadline (a zero deadline: none).
func (d *dialer) dial(ctx context.Context, deadline time.Time) (*conn, error) {
	nd := net.Dialer{Timeout: d.timeout, Deadline: deadline}
	nc, err := nd.DialContext(ctx, "tcp", d.in.Address())
	if err != nil {
		return nil, err
	}
	if d.in.TLS {
		cfg, err := d.tls.config(d.in.Host)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, d.timeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	conf := &thrift.TConfiguration{MaxFrameSize: d.maxFrame, MaxMessageSize: d.maxFrame}
	var trans thrift.TTransport = thrift.NewStreamTransportRW(nc) // buffered both ways
	c := &conn{nc: nc, lastUsed: time.Now()}
	compact := d.in.Protocol == "compact"
	switch {
	case d.in.THeader:
		id := byte(protocolBinary)
		if compact {
			id = protocolCompact
		}
		c.header = newHeaderTransport(nc, id, d.maxFrame)
		c.header.setFixed(headerService, d.service, headerInstance, d.in.ID, headerCaller, d.caller)
		trans = c.header
	case d.in.Transport == "framed":
		trans = thrift.NewTFramedTransportConf(trans, conf)
	}
	if compact {
		c.proto = thrift.NewTCompactProtocolConf(trans, conf)
	} else {
		c.proto = thrift.NewTBinaryProtocolConf(trans, conf)
	}
	return c, nil
}

// closedByPeer tells whether an idle connection was closed (or reset) by the server: a peek
// that finds EOF or an error. It is only asked of connections idle for a while.
func (c *conn) closedByPeer() bool {
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	_ = raw.Read(func(fd uintptr) bool {
		var buf [1]byte
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && !errors.Is(err, syscall.EAGAIN)
		return true // never wait
	})
	return closed
}

// callResult is how one attempt on a conn ended.
type callResult struct {
	err     error // nil, a TApplicationException, or a transport failure
	sent    bool  // some of the request may have reached the server
	wire    bool  // err is a transport failure (the conn is broken)
	late    bool  // the server replied soa-error: late
	wrong   bool  // the server replied soa-error: wrong-target
	headers thrift.THeaderMap
}

// call writes one request and reads its reply before deadline (a zero deadline: none). A
// cancelled ctx interrupts blocked reads and writes at once.
func (c *conn) call(ctx context.Context, deadline time.Time, method string, args, result thrift.TStruct) callResult {
	ok := !deadline.IsZero()
	if err := c.nc.SetDeadline(deadline); err != nil {
		return callResult{err: err, wire: true}
	}
	if ctx.Done() != nil { // a context that is never done needs no watching
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	c.seq++
	if c.header != nil {
		// The target's headers are set once per connection; only the deadline changes.
		c.header.seq = uint32(c.seq)
		c.header.deadlineMS, c.header.readHeaders = 0, nil
		if ok {
			c.header.deadlineMS = max(1, time.Until(deadline).Milliseconds())
		}
	}
	if err := c.send(ctx, method, args); err != nil {
		// The write that failed carried the request's last bytes (one flush per message), so
		// the server never read a whole request: not sent, whatever reached it before.
		return callResult{err: err, wire: true}
	}
	if result == nil { // oneway
		return callResult{sent: true}
	}
	err := c.recv(ctx, method, result)
	res := callResult{err: err, sent: true}
	if c.header != nil {
		res.headers = c.header.readHeaders
		switch res.headers[headerError] {
		case "late":
			res.late = true
		case "wrong-target":
			res.wrong, res.sent = true, false
		}
	}
	var appErr thrift.TApplicationException
	if err != nil && !errors.As(err, &appErr) {
		res.wire = true
		if c.seq == 1 && tlsRefused(err) {
			res.sent = false // the server refused the TLS session before reading the request
		}
	}
	return res
}

// tlsRefused tells a TLS alert received from the server (a refused client certificate shows
// only at the first read under TLS 1.3) from other failures.
func tlsRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func (c *conn) send(ctx context.Context, method string, args thrift.TStruct) error {
	if err := c.proto.WriteMessageBegin(ctx, method, thrift.CALL, c.seq); err != nil {
		return err
	}
	if err := args.Write(ctx, c.proto); err != nil {
		return err
	}
	if err := c.proto.WriteMessageEnd(ctx); err != nil {
		return err
	}
	return c.proto.Flush(ctx)
}

func (c *conn) recv(ctx context.Context, method string, result thrift.TStruct) error {
	name, kind, seq, err := c.proto.ReadMessageBegin(ctx)
	if err != nil {
		return err
	}
	switch {
	case name != method:
		return thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION,
			fmt.Sprintf("%s: the reply is for %q", method, name))
	case seq != c.seq:
		return thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION,
			fmt.Sprintf("%s: the reply has sequence id %d, want %d", method, seq, c.seq))
	case kind == thrift.EXCEPTION:
		exc := thrift.NewTApplicationException(thrift.UNKNOWN_APPLICATION_EXCEPTION, "")
		if err := exc.Read(ctx, c.proto); err != nil {
			return err
		}
		if err := c.proto.ReadMessageEnd(ctx); err != nil {
			return err
		}
		return exc
	case kind != thrift.REPLY:
		return thrift.NewTTransportException(thrift.UNKNOWN_TRANSPORT_EXCEPTION,
			fmt.Sprintf("%s: unexpected message type %d", method, kind))
	}
	if err := result.Read(ctx, c.proto); err != nil {
		return err
	}
	return c.proto.ReadMessageEnd(ctx)
}

func (c *conn) close() { _ = c.nc.Close() }

// emptyStruct writes an empty struct and reads (skips) any: the arguments and result of a probe.
type emptyStruct struct{}

// Write writes an empty struct.
func (emptyStruct) Write(ctx context.Context, p thrift.TProtocol) error {
	if err := p.WriteStructBegin(ctx, "probe"); err != nil {
		return err
	}
	if err := p.WriteFieldStop(ctx); err != nil {
		return err
	}
	return p.WriteStructEnd(ctx)
}

// Read skips whatever struct comes.
func (emptyStruct) Read(ctx context.Context, p thrift.TProtocol) error {
	return p.Skip(ctx, thrift.STRUCT)
}

// probe asks the instance a real Thrift question, ping(); any reply, an application error
// included, means the process answered.
func probe(ctx context.Context, d *dialer) bool {
	deadline := time.Now().Add(d.timeout + time.Second)
	c, err := d.dial(ctx, deadline)
	if err != nil {
		return false
	}
	defer c.close()
	res := c.call(ctx, deadline, "ping", emptyStruct{}, emptyStruct{})
	return !res.wire
}
