'use strict';
/**
 * The retry budget (as soa/clients/retry.py's RetryBudget): a token bucket where every call
 * deposits `ratio` tokens (at most `cap`) and every retry after sending withdraws one, plus a
 * reserve of `minPerSecond` retries per second so that a quiet client can still retry. It keeps
 * retries from multiplying the load on a failing service.
 */

class RetryBudget {
  constructor({ ratio = 0.1, minPerSecond = 10, cap = null } = {}) {
    this.ratio = ratio;
    this.cap = cap === null ? Math.max(10, ratio * 1000) : cap;
    this.balance = 0;
    this.minPerSecond = minPerSecond;
    this.reserve = minPerSecond;
    this.refilled = Date.now();
  }

  deposit() {
    this.balance = Math.min(this.cap, this.balance + this.ratio);
  }

  /** Takes one retry token; false when the budget is spent. */
  withdraw() {
    if (this.balance >= 0.999999) {
      this.balance -= 1;
      return true;
    }
    const now = Date.now();
    this.reserve = Math.min(this.minPerSecond, this.reserve + ((now - this.refilled) / 1000) * this.minPerSecond);
    this.refilled = now;
    if (this.reserve >= 1) {
      this.reserve -= 1;
      return true;
    }
    return false;
  }
}

module.exports = { RetryBudget };
