package soa

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errPoolClosed is a call that met the pool of an instance that has left the registry.
var errPoolClosed = errors.New("the instance left the registry; its pool is closed")

// pool is a bounded set of connections to one instance: at most max are open (in use plus
// idle); a call that finds all in use waits for one, until its deadline. Idle connections are
// reused newest first; one idle longer than idle is closed instead. A connection that saw a
// transport error is closed, never put back. close closes the idle ones at once and every
// busy one when it is returned.
type pool struct {
	dialer *dialer
	idle   time.Duration
	slots  chan struct{} // one token per connection that may be open

	mu     sync.Mutex
	free   []*conn // idle, oldest first
	closed bool
	dials  int // connections opened so far (for tests and metrics)
}

func newPool(d *dialer, max int, idle time.Duration) *pool {
	return &pool{dialer: d, idle: idle, slots: make(chan struct{}, max)}
}

// get returns an idle connection or a new one. reused says which. The error is a dial error
// (nothing was sent), errPoolClosed, or ctx's error (context.DeadlineExceeded once deadline
// passes) while waiting for a free slot.
func (p *pool) get(ctx context.Context, deadline time.Time) (c *conn, reused bool, err error) {
	select {
	case p.slots <- struct{}{}:
	default:
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-timer.C:
			return nil, false, context.DeadlineExceeded
		}
	}
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, false, errPoolClosed
	}
	var stale []*conn
	for n := len(p.free); n > 0; n = len(p.free) {
		c = p.free[n-1]
		p.free = p.free[:n-1]
		if now.Sub(c.lastUsed) < p.idle {
			break
		}
		stale = append(stale, c)
		c = nil
	}
	// Connections idle longer than the newest are older still: close them too.
	for len(p.free) > 0 && now.Sub(p.free[0].lastUsed) >= p.idle {
		stale = append(stale, p.free[0])
		p.free = p.free[1:]
	}
	if c == nil {
		p.dials++
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.close()
	}
	if c != nil {
		if now.Sub(c.lastUsed) < time.Second || !c.closedByPeer() {
			return c, true, nil
		}
		c.close() // the server closed it while idle: dial afresh
		p.mu.Lock()
		p.dials++
		p.mu.Unlock()
	}
	c, err = p.dialer.dial(ctx, deadline)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, false, nil
}

// put returns c after a call; a broken c, or any c once the pool is closed, is closed instead.
func (p *pool) put(c *conn) {
	p.mu.Lock()
	if c.broken || p.closed {
		p.mu.Unlock()
		c.close()
	} else {
		c.lastUsed = time.Now()
		p.free = append(p.free, c)
		p.mu.Unlock()
	}
	<-p.slots
}

// close closes the idle connections; busy ones are closed as they come back.
func (p *pool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range free {
		c.close()
	}
}

// stats is the number of connections dialled so far and of those idle now.
func (p *pool) stats() (dials, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dials, len(p.free)
}
