'use strict';
/**
 * The balancers of registry/BALANCING.md. A balancer turns a set of instances into an immutable
 * picker (`balancer.picker(instances)`, called on every change of the set, never per call);
 * `picker.pick(key)` returns one instance. Only usable instances (weight > 0) are picked; with
 * none, `pick` returns null and the caller raises NoInstanceAvailable.
 */

const crypto = require('node:crypto');
const { address } = require('./instance');

const VNODES = 160;
const MAX_CYCLE = 65536;

const usable = (instances) => instances.filter((i) => i.weight > 0);
const randomInt = (n) => Math.floor(Math.random() * n);

/** A picker with nothing to pick. */
const EMPTY = Object.freeze({ instances: Object.freeze([]), pick: () => null });

/** `round_robin`: each usable instance in turn; the counter starts at a random place. */
class RoundRobin {
  constructor() { this.name = 'round_robin'; }

  picker(instances, { start = null } = {}) {
    const live = usable(instances);
    if (!live.length) return EMPTY;
    let next = start === null ? randomInt(live.length) : start;
    return { instances: live, pick: () => live[(next++) % live.length] };
  }
}

/** nginx's smooth weighted round robin over one cycle (weights divided by their gcd), computed
 * once per set so the picker walks it with a counter. Ties go to the first in key order. */
function smoothSequence(weights) {
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  const g = weights.reduce(gcd);
  let w = weights.map((x) => x / g);
  let total = w.reduce((a, b) => a + b, 0);
  if (total === w.length) return w.map((_, i) => i);
  if (total > MAX_CYCLE) {
    w = w.map((x) => Math.max(1, Math.round((x * MAX_CYCLE) / total)));
    total = w.reduce((a, b) => a + b, 0);
  }
  const current = new Array(w.length).fill(0);
  const out = [];
  for (let n = 0; n < total; n += 1) {
    let best = 0;
    for (let i = 0; i < w.length; i += 1) {
      current[i] += w[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    out.push(best);
  }
  return out;
}

/** `weighted_round_robin`: smooth WRR (5,1,1 gives a a b a c a a). */
class WeightedRoundRobin {
  constructor() { this.name = 'weighted_round_robin'; }

  picker(instances, { start = null } = {}) {
    const live = usable(instances);
    if (!live.length) return EMPTY;
    const sequence = smoothSequence(live.map((i) => i.weight)).map((i) => live[i]);
    let next = start === null ? randomInt(sequence.length) : start;
    return { instances: live, pick: () => sequence[(next++) % sequence.length] };
  }
}

/** `weighted_random`: an instance with probability weight / sum(weights). */
class WeightedRandom {
  constructor() { this.name = 'weighted_random'; }

  picker(instances) {
    const live = usable(instances);
    if (!live.length) return EMPTY;
    const cumulative = [];
    let total = 0;
    for (const i of live) cumulative.push((total += i.weight));
    return {
      instances: live,
      pick: () => {
        const r = Math.random() * total;
        let lo = 0;
        let hi = cumulative.length - 1;
        while (lo < hi) { // the first cumulative weight > r
          const mid = (lo + hi) >> 1;
          if (cumulative[mid] > r) hi = mid; else lo = mid + 1;
        }
        return live[lo];
      },
    };
  }
}

/** `least_inflight`: two distinct instances drawn uniformly, the one with fewer calls in flight
 * from this client wins (the first drawn on a tie). `inflight` is a Map address -> count that the
 * client keeps current; the picker only reads it. */
class LeastInflight {
  constructor(inflight = new Map()) {
    this.name = 'least_inflight';
    this.inflight = inflight;
  }

  picker(instances) {
    const live = usable(instances);
    if (!live.length) return EMPTY;
    const addrs = live.map(address);
    const { inflight } = this;
    return {
      instances: live,
      pick: () => {
        const n = live.length;
        if (n === 1) return live[0];
        const a = randomInt(n);
        let b = randomInt(n - 1);
        if (b >= a) b += 1;
        return (inflight.get(addrs[b]) || 0) < (inflight.get(addrs[a]) || 0) ? live[b] : live[a];
      },
    };
  }
}

/** The ring position of `data`: the first 8 bytes of its MD5, unsigned big-endian (a BigInt). */
function hash64(data) {
  const bytes = Buffer.isBuffer(data) || data instanceof Uint8Array ? data : Buffer.from(String(data), 'utf8');
  return crypto.createHash('md5').update(bytes).digest().readBigUInt64BE(0);
}

/** `consistent_hash`: BALANCING.md's ring. `pick(key)`: a string, a number (decimal), a Buffer,
 * or null/undefined (a uniformly random instance). */
class ConsistentHash {
  constructor() { this.name = 'consistent_hash'; }

  picker(instances) {
    const live = usable(instances);
    if (!live.length) return EMPTY;
    const ring = [];
    for (const instance of live) {
      const addr = address(instance);
      const vnodes = Math.max(1, Math.floor((VNODES * instance.weight) / 100));
      for (let v = 0; v < vnodes; v += 1) ring.push({ position: hash64(`${addr}#${v}`), addr, instance });
    }
    ring.sort((x, y) => {
      if (x.position !== y.position) return x.position < y.position ? -1 : 1;
      return Buffer.compare(Buffer.from(x.addr), Buffer.from(y.addr));
    });
    const positions = new BigUint64Array(ring.map((p) => p.position));
    const owners = ring.map((p) => p.instance);
    return {
      instances: live,
      pick: (key) => {
        if (key === null || key === undefined) return live[randomInt(live.length)];
        const h = hash64(typeof key === 'bigint' ? key.toString() : key);
        let lo = 0;
        let hi = positions.length;
        while (lo < hi) { // the first position >= h
          const mid = (lo + hi) >> 1;
          if (positions[mid] < h) lo = mid + 1; else hi = mid;
        }
        return owners[lo < positions.length ? lo : 0];
      },
    };
  }
}

const BALANCERS = {
  round_robin: RoundRobin,
  weighted_round_robin: WeightedRoundRobin,
  weighted_random: WeightedRandom,
  least_inflight: LeastInflight,
  consistent_hash: ConsistentHash,
};

/** The balancer called `name` (soa.yaml's names); throws on an unknown one. */
function byName(name, inflight) {
  const Balancer = BALANCERS[name];
  if (!Balancer) throw new Error(`unknown balancer ${JSON.stringify(name)} (known: ${Object.keys(BALANCERS).join(', ')})`);
  return new Balancer(inflight);
}

module.exports = {
  RoundRobin, WeightedRoundRobin, WeightedRandom, LeastInflight, ConsistentHash, BALANCERS, byName, hash64, smoothSequence, EMPTY,
};
