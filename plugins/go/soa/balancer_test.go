package soa

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func endpoints(weights ...int) []*endpoint {
	eps := make([]*endpoint, len(weights))
	for i, w := range weights {
		in := Instance{Service: "s", Host: "10.0.0." + string(rune('1'+i)), Port: 9090, Weight: w}
		eps[i] = &endpoint{in: in, addr: in.Address()}
	}
	return eps
}

func counts(t *testing.T, name string, eps []*endpoint, n int) map[string]int {
	t.Helper()
	p, err := newPicker(name, eps)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for range n {
		out[p.pick("", false, nil).addr]++
	}
	return out
}

func TestRoundRobinGoesInKeyOrder(t *testing.T) {
	eps := endpoints(100, 100, 100)
	p, _ := newPicker(RoundRobin, eps)
	for i := range 9 {
		if got := p.pick("", false, nil); got != eps[i%3] {
			t.Fatalf("pick %d: got %s", i, got.addr)
		}
	}
}

func TestSmoothWeightedRoundRobinInterleaves(t *testing.T) {
	eps := endpoints(5, 1, 1)
	p, _ := newPicker(WeightedRoundRobin, eps)
	var got []string
	for range 7 {
		got = append(got, p.pick("", false, nil).addr[7:8])
	}
	// nginx's sequence for weights 5,1,1: a a b a c a a
	if want := "1 1 2 1 3 1 1"; joined(got) != want {
		t.Fatalf("got %s, want %s", joined(got), want)
	}
}

func joined(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestWeightedRandomFollowsWeights(t *testing.T) {
	eps := endpoints(300, 100)
	got := counts(t, WeightedRandom, eps, 40000)
	share := float64(got[eps[0].addr]) / 40000
	if math.Abs(share-0.75) > 0.02 {
		t.Fatalf("share of the weight-300 instance: %.3f, want 0.75", share)
	}
}

func TestLeastInFlightAvoidsTheBusyOne(t *testing.T) {
	eps := endpoints(100, 100, 100)
	eps[0].inflight.Store(10)
	got := counts(t, LeastInFlight, eps, 3000)
	if got[eps[0].addr] != 0 {
		t.Fatalf("the busy instance was picked %d times: %v", got[eps[0].addr], got)
	}
	if got[eps[1].addr] < 1200 || got[eps[2].addr] < 1200 {
		t.Fatalf("the idle ones share unevenly: %v", got)
	}
}

func TestSkipLeavesTriedOnesOut(t *testing.T) {
	eps := endpoints(100, 100, 100)
	skip := func(ep *endpoint) bool { return ep != eps[2] }
	for _, name := range []string{RoundRobin, WeightedRoundRobin, WeightedRandom, LeastInFlight, ConsistentHash} {
		p, _ := newPicker(name, eps)
		for range 10 {
			if got := p.pick("k", true, skip); got != eps[2] {
				t.Fatalf("%s: got %v", name, got)
			}
		}
		if got := p.pick("k", true, func(*endpoint) bool { return true }); got != nil {
			t.Fatalf("%s: all skipped, got %s", name, got.addr)
		}
	}
}

func TestEmptySetPicksNothing(t *testing.T) {
	for _, name := range []string{RoundRobin, WeightedRoundRobin, WeightedRandom, LeastInFlight, ConsistentHash} {
		p, _ := newPicker(name, nil)
		if got := p.pick("k", true, nil); got != nil {
			t.Fatalf("%s: got %s", name, got.addr)
		}
	}
}

func TestUnknownBalancer(t *testing.T) {
	if _, err := newPicker("fastest", nil); err == nil {
		t.Fatal("no error")
	}
}

// hashVector is one registry/vectors/hash/*.json case (registry/BALANCING.md, "Vectors").
type hashVector struct {
	Instances []struct {
		Host   string `json:"host"`
		Port   int    `json:"port"`
		Weight int    `json:"weight"`
	} `json:"instances"`
	Keys map[string]string `json:"keys"`
}

func TestHashVectors(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "..", "registry", "vectors", "hash", "*.json"))
	if len(paths) == 0 {
		t.Fatal("no vectors under registry/vectors/hash")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var v hashVector
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			var eps []*endpoint
			for _, x := range v.Instances {
				in := Instance{Host: x.Host, Port: x.Port, Weight: x.Weight}
				if in.Weight > 0 { // only usable instances reach a picker
					eps = append(eps, &endpoint{in: in, addr: in.Address()})
				}
			}
			p, _ := newPicker(ConsistentHash, eps)
			for key, want := range v.Keys {
				if got := p.pick(key, true, nil); got == nil || got.addr != want {
					t.Errorf("key %q: got %v, want %s", key, got, want)
				}
			}
		})
	}
}
