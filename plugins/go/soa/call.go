package soa

import (
	"context"
	"errors"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// Call runs one Thrift call (thrift.TClient): the generated client code calls it. It picks an
// instance with the balancer, takes a pooled connection, sends the request (over THeader with
// the deadline and the target's identity when the instance advertises it) and reads the reply,
// all within ctx's deadline (CallTimeout when ctx has none).
//
// A call that was not sent (connect refused, the server answered wrong-target) goes on to
// another instance; a call that was sent is retried only for the methods in
// ClientOptions.Idempotent, within the retry budget. Exceptions declared in the IDL reach the
// generated code as results; a TApplicationException is returned as is, never retried.
// Errors: *NoInstanceError, *TransportError, *DeadlineError, *RetryError (several attempts),
// or ctx's error when the caller cancelled.
func (c *Client) Call(ctx context.Context, method string, args, result thrift.TStruct) (thrift.ResponseMeta, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.opts.CallTimeout)
		if ctx.Done() != nil { // cancellable: its waits must end at the deadline, too
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		// A context that is never done (context.Background) needs no context of its own:
		// the deadline goes straight to the pool's wait and to the socket.
	}
	c.budget.deposit()
	key, hasKey := hashKey(ctx)
	var tried []*endpoint
	var skip func(*endpoint) bool // set at the first failure: nothing to skip before
	var attempts []error
	unsentLeft, sentLeft := unsentRetries, c.opts.Retries
	for {
		st := c.state.Load()
		ep := st.picker.pick(key, hasKey, skip)
		if ep == nil && len(tried) > 0 && len(attempts) > 0 && isSent(attempts[len(attempts)-1]) {
			ep = st.picker.pick(key, hasKey, nil) // a sent idempotent call may go to the same one
		}
		if ep == nil {
			reason := st.reason
			if reason == "" {
				reason = "every usable instance was tried"
			}
			attempts = append(attempts, &NoInstanceError{Service: c.service, Reason: reason})
			break
		}
		meta, err := c.attempt(ctx, deadline, ep, method, args, result)
		if err == nil {
			return meta, nil
		}
		attempts = append(attempts, err)
		tried = append(tried, ep)
		if skip == nil {
			skip = func(ep *endpoint) bool {
				for _, t := range tried {
					if t == ep {
						return true
					}
				}
				return false
			}
		}
		var te *TransportError
		if !errors.As(err, &te) || ctx.Err() != nil || !time.Now().Before(deadline) {
			break // an answer, a deadline, or the caller gave up
		}
		if !te.Sent && unsentLeft > 0 {
			unsentLeft--
		} else if te.Sent && c.idempotent[method] && sentLeft > 0 && c.budget.withdraw() {
			sentLeft--
		} else {
			break
		}
	}
	if len(attempts) == 1 {
		return thrift.ResponseMeta{}, attempts[0]
	}
	return thrift.ResponseMeta{}, &RetryError{Service: c.service, Method: method, Attempts: attempts}
}

func isSent(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.Sent
}

// attempt is one try on ep, within deadline (ctx's, when it has one); the error is classified
// for Call and the ejector.
func (c *Client) attempt(ctx context.Context, deadline time.Time, ep *endpoint, method string, args, result thrift.TStruct) (thrift.ResponseMeta, error) {
	ep.inflight.Add(1)
	defer ep.inflight.Add(-1)
	started := time.Now()
	cn, reused, err := ep.pool.get(ctx, deadline)
	if err != nil {
		switch {
		case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
			err = c.contextError(ctx, method, ep, false)
		case errors.Is(err, errPoolClosed):
			err = &TransportError{Service: c.service, Method: method, Address: ep.addr, Err: err}
		default:
			c.failed(ep)
			err = &TransportError{Service: c.service, Method: method, Address: ep.addr, Err: err}
		}
		c.report(method, ep, false, err, started)
		return thrift.ResponseMeta{}, err
	}
	res := cn.call(ctx, deadline, method, args, result)
	if res.wire || res.wrong || ctx.Err() != nil {
		cn.broken = true
	}
	ep.pool.put(cn)
	meta := thrift.ResponseMeta{Headers: res.headers}
	switch {
	case res.wrong:
		c.markWrong(ep)
		err = &TransportError{Service: c.service, Method: method, Address: ep.addr, Err: errWrongTarget}
	case res.late:
		c.succeeded(ep) // it answered
		err = &DeadlineError{Service: c.service, Method: method, Address: ep.addr, Refused: true}
	case res.err == nil:
		c.succeeded(ep)
	case !res.wire:
		c.succeeded(ep) // a TApplicationException: an answer
		err = res.err
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.failed(ep)
		}
		err = c.contextError(ctx, method, ep, res.sent)
	case isTimeout(res.err):
		c.failed(ep)
		err = &DeadlineError{Service: c.service, Method: method, Address: ep.addr}
	default:
		err = &TransportError{Service: c.service, Method: method, Address: ep.addr, Sent: res.sent, Err: res.err}
	}
	c.report(method, ep, reused, err, started)
	return meta, err
}

// contextError is the error of a call that ctx (or, for a context never done, the deadline)
// ended.
func (c *Client) contextError(ctx context.Context, method string, ep *endpoint, sent bool) error {
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &DeadlineError{Service: c.service, Method: method, Address: ep.addr}
	}
	return &TransportError{Service: c.service, Method: method, Address: ep.addr, Sent: sent, Err: ctx.Err()}
}

func (c *Client) report(method string, ep *endpoint, reused bool, err error, started time.Time) {
	if c.opts.OnAttempt != nil {
		c.opts.OnAttempt(Attempt{Method: method, Instance: ep.in, Reused: reused, Err: err,
			Duration: time.Since(started)})
	}
}
