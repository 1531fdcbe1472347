package soa

import "time"

// Outlier ejection, as the Python client's (soa/clients/ejection.py): EjectAfter consecutive
// failures (connect errors, timeouts) take an instance out of rotation for
// EjectBase*2^(n-1) (n: ejections in a row, capped at EjectMax), never the last usable one; then
// a ping probe readmits it, or ejects it again for twice as long. Any reply clears the strikes.

// succeeded clears ep's strikes: it answered.
func (c *Client) succeeded(ep *endpoint) {
	c.mu.Lock()
	if ep.strikes != 0 || ep.streak != 0 {
		ep.strikes, ep.streak = 0, 0
	}
	c.mu.Unlock()
}

// failed counts a strike against ep and ejects it after EjectAfter in a row.
func (c *Client) failed(ep *endpoint) {
	if c.opts.EjectAfter < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ep.strikes++
	if ep.strikes < c.opts.EjectAfter || ep.gone || c.ejected[ep.addr] || c.eps[ep.addr] != ep {
		return
	}
	if len(c.usable()) <= 1 {
		return // never the last usable one
	}
	ep.strikes = 0
	c.ejected[ep.addr] = true
	c.rebuild()
	delay := c.schedule(ep)
	c.opts.Logger.Printf("soa: %s: ejected %s after %d failure(s) in a row; probing in %s",
		c.service, ep.addr, c.opts.EjectAfter, delay)
}

// usable is the endpoints the picker may choose, in key order (under c.mu).
func (c *Client) usable() []*endpoint {
	var out []*endpoint
	for _, addr := range c.order {
		ep := c.eps[addr]
		if ep.in.Weight > 0 && !c.ejected[addr] && !ep.wrong && c.acceptIDL(ep.in) {
			out = append(out, ep)
		}
	}
	return out
}

// schedule starts ep's next probe (under c.mu).
func (c *Client) schedule(ep *endpoint) time.Duration {
	ep.streak++
	delay := min(c.opts.EjectMax, c.opts.EjectBase<<min(ep.streak-1, 30))
	time.AfterFunc(delay, func() { c.probe(ep) })
	return delay
}

func (c *Client) probe(ep *endpoint) {
	if c.ctx.Err() != nil {
		return
	}
	alive := probe(c.ctx, ep.dialer)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep.gone || !c.ejected[ep.addr] || c.eps[ep.addr] != ep {
		return // it left the registry, or its value changed, meanwhile
	}
	if !alive {
		c.schedule(ep)
		return
	}
	c.opts.Logger.Printf("soa: %s: %s answered a probe; readmitting it", c.service, ep.addr)
	delete(c.ejected, ep.addr)
	c.rebuild()
}

// markWrong leaves ep out until its registry value changes: it serves another service or
// instance now (soa-error: wrong-target).
func (c *Client) markWrong(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ep.wrong {
		ep.wrong = true
		c.opts.Logger.Printf("soa: %s: %s serves another service or instance now; leaving it out until the registry changes",
			c.service, ep.addr)
		c.rebuild()
	}
}
