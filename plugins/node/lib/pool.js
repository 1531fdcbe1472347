'use strict';
/**
 * A bounded pool of connections to one instance. Each connection carries up to `pipeline` calls
 * at once; a call goes to the least loaded connection (the oldest on a tie, so that spare ones
 * go idle), a new connection is opened only when every one is full and fewer than `size` exist,
 * and otherwise the call waits for room until its deadline. Connections with no call in flight
 * for `idleTimeout` ms are closed. A connection that broke (a transport error, a bad reply) is
 * dropped and never reused; one whose call timed out takes no new calls and closes when its
 * other calls are done. `close()` (the instance left the registry) closes the idle connections,
 * lets the busy ones finish their calls and then close, and fails the waiters.
 *
 * `take()` and `acquire()` hand out a connection with one slot reserved; the caller must start
 * its call on it at once (`conn.call`), which uses the slot.
 */

const { performance } = require('node:perf_hooks');
const { Connection } = require('./connection');
const { DeadlineExceeded, TransportError } = require('./errors');

class Pool {
  /** Options: `size`, `pipeline`, `idleTimeout` (ms), `connectTimeout` (ms), `tls`, `ServiceClient`. */
  constructor(instance, options) {
    this.instance = instance;
    this.options = options;
    this.pipeline = options.pipeline || 1;
    this.conns = []; // open, oldest first
    this.opening = 0;
    this.waiters = [];
    this.closed = false;
    this.opened = 0;
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, options.idleTimeout / 2));
    this.sweeper.unref();
  }

  get count() {
    return this.conns.length + this.opening;
  }

  /** A connection with room for one more call now, or null (no promise: the warm path). */
  take() {
    let best = null;
    let load = this.pipeline;
    for (const conn of this.conns) {
      const l = conn.inflight.size + conn.reserved;
      if (conn.usable && l < load) {
        best = conn;
        load = l;
        if (l === 0) break;
      }
    }
    if (best) best.reserved += 1;
    return best;
  }

  /** A connection for one call; rejects with ConnectError, or DeadlineExceeded while waiting. */
  acquire(deadline) {
    if (this.closed) return Promise.reject(this.gone());
    const conn = this.take();
    if (conn) return Promise.resolve(conn);
    // open another connection only when those being opened cannot take the calls waiting
    if (this.count < this.options.size && this.waiters.length >= this.opening * (this.pipeline - 1)) return this.open(deadline);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, deadline };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new DeadlineExceeded(`soa: no free connection to ${this.instance.host}:${this.instance.port} within the deadline (pool size ${this.options.size})`, { sent: false }));
      }, Math.max(0, deadline - performance.now()));
      this.waiters.push(waiter);
    });
  }

  gone() {
    return new TransportError(`soa: ${this.instance.host}:${this.instance.port} left the registry`, { sent: false });
  }

  async open(deadline) {
    this.opening += 1;
    const timeout = Math.max(1, Math.min(this.options.connectTimeout, deadline - performance.now()));
    let conn;
    try {
      conn = await Connection.open(this.instance, { ...this.options, timeout });
    } catch (e) {
      this.opening -= 1;
      this.wake();
      throw e;
    }
    this.opening -= 1;
    this.opened += 1;
    conn.reserved = 1;
    conn.onIdle = (c) => this.changed(c);
    if (this.closed) conn.draining = true;
    this.conns.push(conn);
    queueMicrotask(() => this.wake()); // its other slots go to the calls that waited for it
    return conn;
  }

  /** A call on `conn` ended, or it broke: drop it if broken, else offer its room to a waiter. */
  changed(conn) {
    if (conn.broken) {
      const i = this.conns.indexOf(conn);
      if (i >= 0) this.conns.splice(i, 1);
    }
    this.wake();
  }

  wake() {
    while (this.waiters.length && !this.closed) {
      const conn = this.take();
      if (conn) {
        const waiter = this.waiters.shift();
        clearTimeout(waiter.timer);
        waiter.resolve(conn);
      } else if (this.count < this.options.size && this.waiters.length > this.opening * (this.pipeline - 1)) {
        const waiter = this.waiters.shift();
        clearTimeout(waiter.timer);
        this.open(waiter.deadline).then(waiter.resolve, waiter.reject);
      } else {
        return;
      }
    }
  }

  sweep() {
    const limit = performance.now() - this.options.idleTimeout;
    for (const conn of [...this.conns]) {
      if (conn.inflight.size === 0 && conn.reserved === 0 && conn.idleSince < limit) conn.close();
    }
  }

  close() {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const conn of [...this.conns]) {
      if (conn.inflight.size === 0 && conn.reserved === 0) conn.close();
      else conn.draining = true;
    }
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(this.gone());
    }
  }
}

module.exports = { Pool };
