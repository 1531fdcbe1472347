package soa

import "sync"

// Balancer picks instances by smooth weighted round robin (the nginx algorithm): over any
// window of total-weight picks each instance gets its weight's share, evenly interleaved.
// Instances with weight 0 are never picked. Each instance's running score is kept by address,
// so a change of the set does not reset the rotation of the instances that stay.
type Balancer struct {
	mu      sync.Mutex
	current map[string]int
}

// NewBalancer returns an empty Balancer.
func NewBalancer() *Balancer { return &Balancer{current: map[string]int{}} }

// Pick returns the next instance of set, leaving out the addresses in skip; false when none
// is left with weight > 0.
func (b *Balancer) Pick(set []Instance, skip map[string]bool) (Instance, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	total, best := 0, -1
	live := make(map[string]bool, len(set))
	for i, in := range set {
		addr := in.Address()
		live[addr] = true
		if in.Weight <= 0 || skip[addr] {
			continue
		}
		b.current[addr] += in.Weight
		total += in.Weight
		if best < 0 || b.current[addr] > b.current[set[best].Address()] {
			best = i
		}
	}
	for addr := range b.current {
		if !live[addr] {
			delete(b.current, addr)
		}
	}
	if best < 0 {
		return Instance{}, false
	}
	b.current[set[best].Address()] -= total
	return set[best], true
}
