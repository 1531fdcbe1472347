package soa

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
)

// The balancers of registry/BALANCING.md, by their soa.yaml names (ClientOptions.Balancer).
const (
	RoundRobin         = "round_robin"          // call n goes to instances[n mod len], in key order
	WeightedRoundRobin = "weighted_round_robin" // nginx's smooth weighted round robin
	WeightedRandom     = "weighted_random"      // probability weight / sum(weights)
	LeastInFlight      = "least_inflight"       // power of two choices on calls in flight
	ConsistentHash     = "consistent_hash"      // the cross-language ring; key from WithHashKey
)

// picker chooses among one immutable set of usable endpoints (weight > 0, in key order). A new
// one is built on every change of the set. pick returns nil when every endpoint is skipped.
// skip may be nil; key is the call's hash key (hasKey false: none). Safe for concurrent use.
type picker interface {
	pick(key string, hasKey bool, skip func(*endpoint) bool) *endpoint
}

func newPicker(name string, eps []*endpoint) (picker, error) {
	switch name {
	case RoundRobin, "":
		return &rrPicker{eps: eps}, nil
	case WeightedRoundRobin:
		return &swrrPicker{eps: eps, current: make([]int, len(eps))}, nil
	case WeightedRandom:
		return newRandomPicker(eps), nil
	case LeastInFlight:
		return &p2cPicker{eps: eps}, nil
	case ConsistentHash:
		return &ringPicker{ring: newRing(eps), eps: eps}, nil
	}
	return nil, fmt.Errorf("soa: unknown balancer %q (want %s, %s, %s, %s or %s)", name,
		RoundRobin, WeightedRoundRobin, WeightedRandom, LeastInFlight, ConsistentHash)
}

// unskipped is the endpoints that skip leaves.
func unskipped(eps []*endpoint, skip func(*endpoint) bool) []*endpoint {
	out := make([]*endpoint, 0, len(eps))
	for _, ep := range eps {
		if skip == nil || !skip(ep) {
			out = append(out, ep)
		}
	}
	return out
}

type rrPicker struct {
	eps []*endpoint
	n   atomic.Uint64
}

func (p *rrPicker) pick(_ string, _ bool, skip func(*endpoint) bool) *endpoint {
	if len(p.eps) == 0 {
		return nil
	}
	n := p.n.Add(1) - 1
	for i := range uint64(len(p.eps)) {
		ep := p.eps[(n+i)%uint64(len(p.eps))]
		if skip == nil || !skip(ep) {
			return ep
		}
	}
	return nil
}

// swrrPicker is nginx's smooth weighted round robin; skipped endpoints take no part in a pick.
type swrrPicker struct {
	mu      sync.Mutex
	eps     []*endpoint
	current []int
}

func (p *swrrPicker) pick(_ string, _ bool, skip func(*endpoint) bool) *endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	total, best := 0, -1
	for i, ep := range p.eps {
		if skip != nil && skip(ep) {
			continue
		}
		p.current[i] += ep.in.Weight
		total += ep.in.Weight
		if best < 0 || p.current[i] > p.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	p.current[best] -= total
	return p.eps[best]
}

type randomPicker struct {
	eps   []*endpoint
	cum   []int // running sums of the weights
	total int
}

func newRandomPicker(eps []*endpoint) *randomPicker {
	p := &randomPicker{eps: eps, cum: make([]int, len(eps))}
	for i, ep := range eps {
		p.total += ep.in.Weight
		p.cum[i] = p.total
	}
	return p
}

func (p *randomPicker) pick(_ string, _ bool, skip func(*endpoint) bool) *endpoint {
	if skip == nil && p.total > 0 {
		r := rand.IntN(p.total)
		return p.eps[sort.SearchInts(p.cum, r+1)]
	}
	left := unskipped(p.eps, skip)
	if len(left) == 0 {
		return nil
	}
	return newRandomPicker(left).pick("", false, nil)
}

// p2cPicker draws two distinct endpoints and takes the one with fewer calls in flight from this
// client (the first drawn on a tie).
type p2cPicker struct{ eps []*endpoint }

func (p *p2cPicker) pick(_ string, _ bool, skip func(*endpoint) bool) *endpoint {
	eps := p.eps
	if skip != nil {
		eps = unskipped(eps, skip)
	}
	switch len(eps) {
	case 0:
		return nil
	case 1:
		return eps[0]
	}
	i := rand.IntN(len(eps))
	j := rand.IntN(len(eps) - 1)
	if j >= i {
		j++
	}
	a, b := eps[i], eps[j]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// ringPicker is the consistent-hash ring; a call without a key goes to a random endpoint, and a
// key whose owner is skipped goes to the next owner along the ring.
type ringPicker struct {
	ring *ring
	eps  []*endpoint
}

func (p *ringPicker) pick(key string, hasKey bool, skip func(*endpoint) bool) *endpoint {
	if !hasKey {
		left := p.eps
		if skip != nil {
			left = unskipped(p.eps, skip)
		}
		if len(left) == 0 {
			return nil
		}
		return left[rand.IntN(len(left))]
	}
	return p.ring.owner(key, skip)
}
