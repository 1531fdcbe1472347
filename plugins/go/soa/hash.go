package soa

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"sort"
	"strconv"
)

// ring is the consistent-hash ring of registry/BALANCING.md: each usable endpoint owns
// max(1, floor(160*weight/100)) points at hash64("{address}#{v}"), sorted by position then
// address; a key goes to the owner of the first point at or after hash64(key), wrapping.
type ring struct {
	points []ringPoint
}

type ringPoint struct {
	pos  uint64
	addr string
	ep   *endpoint
}

// hash64 is the first 8 bytes of the MD5 digest of b, big-endian.
func hash64(b []byte) uint64 {
	sum := md5.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

func newRing(eps []*endpoint) *ring {
	r := &ring{}
	for _, ep := range eps {
		if ep.in.Weight <= 0 {
			continue
		}
		nodes := max(1, 160*ep.in.Weight/100)
		for v := range nodes {
			pos := hash64([]byte(ep.addr + "#" + strconv.Itoa(v)))
			r.points = append(r.points, ringPoint{pos: pos, addr: ep.addr, ep: ep})
		}
	}
	sort.Slice(r.points, func(i, j int) bool {
		a, b := r.points[i], r.points[j]
		if a.pos != b.pos {
			return a.pos < b.pos
		}
		return a.addr < b.addr
	})
	return r
}

// owner is the endpoint key maps to, walking on past skipped owners; nil when all are skipped.
func (r *ring) owner(key string, skip func(*endpoint) bool) *endpoint {
	n := len(r.points)
	if n == 0 {
		return nil
	}
	h := hash64([]byte(key))
	start := sort.Search(n, func(i int) bool { return r.points[i].pos >= h })
	for i := range n {
		ep := r.points[(start+i)%n].ep
		if skip == nil || !skip(ep) {
			return ep
		}
	}
	return nil
}

type hashKeyType struct{}

// WithHashKey returns a context whose calls are routed by key with the consistent_hash
// balancer: the same key goes to the same instance in every soa language. Render an integer key
// in decimal (strconv.Itoa) to match the other languages. Other balancers ignore it.
func WithHashKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, hashKeyType{}, key)
}

func hashKey(ctx context.Context) (string, bool) {
	key, ok := ctx.Value(hashKeyType{}).(string)
	return key, ok
}
