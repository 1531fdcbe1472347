package soa

import "testing"

func TestRetryBudgetEarnsTenPercent(t *testing.T) {
	b := newRetryBudget(0.1, 1e-9)
	b.reserve = 0
	for range 100 {
		b.deposit()
	}
	n := 0
	for b.withdraw() {
		n++
	}
	if n != 10 {
		t.Fatalf("100 calls earned %d retries, want 10", n)
	}
}

func TestRetryBudgetReserve(t *testing.T) {
	b := newRetryBudget(0.1, 5)
	n := 0
	for b.withdraw() {
		n++
	}
	if n != 5 {
		t.Fatalf("a quiet client got %d retries from the reserve, want 5", n)
	}
}
