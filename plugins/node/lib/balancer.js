'use strict';
/**
 * Smooth weighted round robin (the nginx algorithm): over any window of total-weight picks each
 * instance gets its weight's share, evenly interleaved. Weight 0 is never picked. Scores are
 * kept by address, so a change of the set does not reset the rotation of those that stay.
 */

const { address } = require('./instance');

class Balancer {
  constructor() {
    this.current = new Map();
  }

  /** The next instance of `set`, leaving out the addresses in `skip` (a Set); null if none. */
  pick(set, skip = new Set()) {
    let total = 0;
    let best = null;
    let bestScore = 0;
    const live = new Set();
    for (const instance of set) {
      const addr = address(instance);
      live.add(addr);
      if (instance.weight <= 0 || skip.has(addr)) continue;
      const score = (this.current.get(addr) || 0) + instance.weight;
      this.current.set(addr, score);
      total += instance.weight;
      if (best === null || score > bestScore) {
        best = instance;
        bestScore = score;
      }
    }
    for (const addr of this.current.keys()) {
      if (!live.has(addr)) this.current.delete(addr);
    }
    if (best === null) return null;
    this.current.set(address(best), bestScore - total);
    return best;
  }
}

module.exports = { Balancer };
