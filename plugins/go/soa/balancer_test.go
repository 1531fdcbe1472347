package soa

import (
	"strings"
	"testing"
)

func inst(host string, weight int) Instance {
	return Instance{Service: "s", Host: host, Port: 1, Weight: weight, Protocol: "binary", Transport: "buffered"}
}

func picks(b *Balancer, set []Instance, n int) string {
	var out []string
	for i := 0; i < n; i++ {
		in, ok := b.Pick(set, nil)
		if !ok {
			out = append(out, "-")
			continue
		}
		out = append(out, in.Host)
	}
	return strings.Join(out, "")
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	set := []Instance{inst("a", 5), inst("b", 1), inst("c", 1)}
	// nginx's example: a a b a c a a, evenly interleaved
	if got := picks(NewBalancer(), set, 7); got != "aabacaa" {
		t.Fatalf("got %s", got)
	}
}

func TestEqualWeightsAlternate(t *testing.T) {
	set := []Instance{inst("a", 100), inst("b", 100)}
	if got := picks(NewBalancer(), set, 6); got != "ababab" {
		t.Fatalf("got %s", got)
	}
}

func TestWeightZeroNeverPicked(t *testing.T) {
	b := NewBalancer()
	if got := picks(b, []Instance{inst("a", 0), inst("b", 3)}, 4); got != "bbbb" {
		t.Fatalf("got %s", got)
	}
	if _, ok := b.Pick([]Instance{inst("a", 0)}, nil); ok {
		t.Fatal("picked an instance of weight 0")
	}
	if _, ok := b.Pick(nil, nil); ok {
		t.Fatal("picked from an empty set")
	}
}

func TestSkip(t *testing.T) {
	set := []Instance{inst("a", 1), inst("b", 1)}
	b := NewBalancer()
	for i := 0; i < 4; i++ {
		in, ok := b.Pick(set, map[string]bool{"a:1": true})
		if !ok || in.Host != "b" {
			t.Fatalf("got %+v %v", in, ok)
		}
	}
	if _, ok := b.Pick(set, map[string]bool{"a:1": true, "b:1": true}); ok {
		t.Fatal("picked a skipped instance")
	}
}

func TestSetChangeKeepsRotation(t *testing.T) {
	b := NewBalancer()
	set := []Instance{inst("a", 1), inst("b", 1)}
	_ = picks(b, set, 1) // a
	set = append(set, inst("c", 1))
	got := picks(b, set, 3)
	if strings.Count(got, "a") != 1 || strings.Count(got, "b") != 1 || strings.Count(got, "c") != 1 {
		t.Fatalf("got %s", got)
	}
}
