'use strict';
/**
 * A bounded pool of connections to one instance. `acquire(deadline)` hands out an idle
 * connection (the most recently used first), or opens one while fewer than `size` exist, or
 * waits for one to come back until the deadline. `release(connection)` takes it back; a broken
 * one (it saw a transport error, a timeout or a bad reply) is dropped, never reused. Idle
 * connections are closed after `idleTimeout` ms. `close()` (the instance left the registry)
 * closes every connection and fails the waiters; connections in use are closed when they come
 * back.
 */

const { performance } = require('node:perf_hooks');
const { Connection } = require('./connection');
const { DeadlineExceeded, TransportError } = require('./errors');

class Pool {
  /** Options: `size`, `idleTimeout` (ms), `connectTimeout` (ms), `tls`, `ServiceClient`. */
  constructor(instance, options) {
    this.instance = instance;
    this.options = options;
    this.idle = [];
    this.count = 0; // open or opening
    this.waiters = [];
    this.closed = false;
    this.opened = 0;
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, options.idleTimeout / 2));
    this.sweeper.unref();
  }

  /** An idle connection, or null (no waiting, no promise: the common case of a warm pool). */
  take() {
    while (this.idle.length) {
      const conn = this.idle.pop();
      if (!conn.broken) return conn;
      this.count -= 1;
    }
    return null;
  }

  /** A connection for one call; rejects with ConnectError, or DeadlineExceeded while waiting. */
  acquire(deadline) {
    while (this.idle.length) {
      const conn = this.idle.pop();
      if (!conn.broken) return Promise.resolve(conn);
      this.count -= 1;
    }
    if (this.closed) return Promise.reject(new TransportError(`soa: ${this.instance.host}:${this.instance.port} left the registry`, { sent: false }));
    if (this.count < this.options.size) return this.open(deadline);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, deadline };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new DeadlineExceeded(`soa: no free connection to ${this.instance.host}:${this.instance.port} within the deadline (pool size ${this.options.size})`, { sent: false }));
      }, Math.max(0, deadline - performance.now()));
      this.waiters.push(waiter);
    });
  }

  async open(deadline) {
    this.count += 1;
    const timeout = Math.max(1, Math.min(this.options.connectTimeout, deadline - performance.now()));
    try {
      const conn = await Connection.open(this.instance, { ...this.options, timeout });
      this.opened += 1;
      return conn;
    } catch (e) {
      this.count -= 1;
      this.wakeOne();
      throw e;
    }
  }

  /** Takes a connection back after its call. */
  release(conn) {
    if (conn.broken || this.closed) {
      conn.close();
      this.count -= 1;
      this.wakeOne();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(conn);
      return;
    }
    this.idle.push(conn);
  }

  /** A slot freed up: a waiter may open a connection of its own. */
  wakeOne() {
    if (this.closed || this.count >= this.options.size) return;
    const waiter = this.waiters.shift();
    if (!waiter) return;
    clearTimeout(waiter.timer);
    this.open(waiter.deadline).then(waiter.resolve, waiter.reject);
  }

  sweep() {
    const limit = performance.now() - this.options.idleTimeout;
    const keep = [];
    for (const conn of this.idle) {
      if (conn.broken || conn.idleSince < limit) {
        conn.close();
        this.count -= 1;
      } else {
        keep.push(conn);
      }
    }
    this.idle = keep;
  }

  close() {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const conn of this.idle) conn.close();
    this.count -= this.idle.length;
    this.idle = [];
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new TransportError(`soa: ${this.instance.host}:${this.instance.port} left the registry`, { sent: false }));
    }
  }
}

module.exports = { Pool };
