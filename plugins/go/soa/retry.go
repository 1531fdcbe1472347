package soa

import (
	"sync"
	"sync/atomic"
	"time"
)

// unsentRetries is how many more instances a call that was never sent may try (connect
// refused, pool closed, wrong target): the server never saw it, so any method may go on.
const unsentRetries = 3

// retryBudget is a token bucket, as in the Python client (soa/clients/retry.py), Finagle and
// gRPC: each call deposits ratio tokens (at most max), each retry of a sent call withdraws one;
// a reserve of minPerSecond retries per second lets a quiet client still retry.
type retryBudget struct {
	calls        atomic.Int64 // deposits, settled into balance when a retry asks
	mu           sync.Mutex
	settled      int64
	ratio        float64
	max          float64
	minPerSecond float64
	balance      float64
	reserve      float64
	refilled     time.Time
}

func newRetryBudget(ratio, minPerSecond float64) *retryBudget {
	return &retryBudget{ratio: ratio, max: max(10, ratio*1000), minPerSecond: minPerSecond,
		reserve: minPerSecond, refilled: time.Now()}
}

func (b *retryBudget) deposit() { b.calls.Add(1) }

// withdraw takes one retry token; false when the budget is spent.
func (b *retryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if calls := b.calls.Load(); calls != b.settled {
		b.balance = min(b.max, b.balance+float64(calls-b.settled)*b.ratio)
		b.settled = calls
	}
	if b.balance >= 0.999999 { // ten deposits of 0.1 may add up to 0.99999...
		b.balance--
		return true
	}
	now := time.Now()
	b.reserve = min(b.minPerSecond, b.reserve+now.Sub(b.refilled).Seconds()*b.minPerSecond)
	b.refilled = now
	if b.reserve >= 1 {
		b.reserve--
		return true
	}
	return false
}
