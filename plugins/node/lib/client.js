'use strict';
/**
 * Calls one soa service: picks an instance with the configured balancer, takes a pooled
 * connection to it, and sends the call (THeader with deadline and identity to instances that
 * speak it, plain Thrift to the others). Around each attempt:
 * - retries: a failure before sending (connect refused or timed out, `wrong-target`) always goes
 *   to an instance not tried yet (at most UNSENT_RETRIES times); a failure after sending is
 *   retried only for methods in `idempotent`, at most `retries` times, each paid from the retry
 *   budget; nothing is retried after the deadline, and answers (IDL exceptions,
 *   TApplicationException) and DeadlineExceeded never are;
 * - outlier ejection: `ejectAfter` failures in a row (connect errors, broken connections,
 *   timeouts) leave an instance out for `ejectBase * 2^(n-1)` ms (n-th ejection in a row, at
 *   most `ejectCap`), never the last usable one; the first success ends the streak;
 * - `wrong-target` leaves the instance out until its registration changes;
 * - the IDL policy (idl.js) filters the set; instances that leave get their pools closed.
 * Everything runs on the event loop; nothing blocks.
 */

const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const { byName } = require('./balancers');
const { address } = require('./instance');
const { Pool } = require('./pool');
const { RetryBudget } = require('./budget');
const { IdlPolicy, findIdlHash } = require('./idl');
const { clientClass } = require('./connection');
const { prober } = require('./probe');
const {
  ConfigError, NoInstanceAvailable, TransportError, ConnectError, WrongTarget, DeadlineExceeded, RetryError,
} = require('./errors');

const UNSENT_RETRIES = 3;
const DEFAULTS = {
  balancer: 'round_robin',
  timeout: 1000,
  connectTimeout: 250,
  retries: 2,
  retryBudget: 0.1,
  poolSize: 64,
  poolIdleTimeout: 60000,
  pipeline: 8,
  theader: true,
  idlMismatch: 'warn',
  ejectAfter: 3,
  ejectBase: 500,
  ejectCap: 30000,
  lateGrace: 50,
  massRemovalShare: 0.5,
  probeInterval: 1000,
};

/**
 * node:tls options from ours (`ca`, `cert`, `key`: PEM file paths, as soa.yaml's
 * `client.tls`; `serverName`: the name to verify instead of the instance's host). Without
 * `ca` the system's CAs verify; the server's certificate is always verified.
 */
function tlsOptions(tls) {
  if (!tls) return {};
  const read = (what) => {
    try {
      return fs.readFileSync(tls[what]);
    } catch (e) {
      throw new ConfigError(`soa: tls.${what}: cannot read ${tls[what]}: ${e.code || e.message}`);
    }
  };
  if (Boolean(tls.cert) !== Boolean(tls.key)) throw new ConfigError('soa: tls: cert and key go together');
  const out = { rejectUnauthorized: true };
  if (tls.ca) out.ca = read('ca');
  if (tls.cert) { out.cert = read('cert'); out.key = read('key'); }
  if (tls.serverName) out.servername = tls.serverName;
  return out;
}

/** What makes a registration another one: a new process, or a new wire format. */
const identity = (i) => `${i.id}|${i.pid}|${i.started_at}|${i.protocol}|${i.transport}|${i.theader}|${i.tls}`;

class Client {
  /**
   * `source`: a Resolver (emits 'change') or anything with an `instances` array.
   * `ServiceClient`: the generated service module (require('./gen-nodejs/CatalogService')) or
   * its Client class. Options: see README.md. Throws ConfigError on bad options.
   */
  constructor(source, ServiceClient, options = {}) {
    if (!clientClass(ServiceClient)) throw new ConfigError('soa: expected the generated service module or its Client class');
    this.options = { ...DEFAULTS, ...options };
    const o = this.options;
    for (const k of ['timeout', 'connectTimeout', 'poolSize', 'pipeline', 'poolIdleTimeout', 'ejectAfter']) {
      if (!(Number.isFinite(o[k]) && o[k] > 0)) throw new ConfigError(`soa: ${k}: expected a positive number, got ${JSON.stringify(o[k])}`);
    }
    this.source = source;
    this.ServiceClient = ServiceClient;
    this.service = o.service || source.service || 'service';
    this.logger = o.logger || console;
    this.idempotent = new Set(o.idempotent || []);
    this.inflight = new Map();
    try {
      this.balancer = byName(o.balancer, this.inflight);
      this.idl = new IdlPolicy(this.service, o.idlHash !== undefined ? o.idlHash : findIdlHash(ServiceClient), o.idlMismatch, this.logger);
    } catch (e) {
      throw new ConfigError(e.message);
    }
    this.tls = tlsOptions(o.tls);
    this.budget = new RetryBudget({ ratio: o.retryBudget });
    this.pools = new Map(); // address -> Pool
    this.known = new Map(); // address -> instance
    this.ejected = new Map(); // address -> timer
    this.strikes = new Map();
    this.streak = new Map();
    this.wrongTarget = new Map(); // address -> identity refused
    this.addrs = new WeakMap(); // instance -> address
    this.headerCache = new WeakMap(); // instance -> its THeader info headers
    this.held = new Map(); // address -> instance kept through a mass removal
    this.listed = false;
    this.probe = prober(ServiceClient, { connectTimeout: o.connectTimeout, tls: this.tls });
    this.lastInstance = null;
    this.counters = { calls: 0, retries: 0, ejections: 0, wrongTarget: 0 };
    this.ownsSource = false;
    this.closed = false;
    this.onChange = (instances) => this.update(instances);
    if (typeof source.on === 'function') source.on('change', this.onChange);
    this.update(source.instances);
  }

  /**
   * A new complete set from the registry. A change that removes every instance, or more than
   * `massRemovalShare` of them, at once is suspicious (an etcd hiccup, a lease lost and about to
   * be written again): the removed ones are held, and dropped one by one as probes fail.
   */
  update(instances, guard = true) {
    const plain = this.options.theader === false;
    const fresh = new Map(instances.map((i) => [address(i), plain && i.theader ? { ...i, theader: false } : i]));
    for (const addr of this.held.keys()) if (fresh.has(addr)) this.held.delete(addr); // back: the registry is right again
    const registered = this.known.size - this.held.size;
    const removed = [...this.known.keys()].filter((a) => !fresh.has(a) && !this.held.has(a));
    if (guard && removed.length && this.listed && (removed.length === registered || removed.length / registered > this.options.massRemovalShare)) {
      this.logger.warn(`soa: ${this.service}: the registry removed ${removed.length} of ${registered} instance(s) at once; keeping them until probes confirm`);
      for (const addr of removed) {
        this.held.set(addr, this.known.get(addr));
        this.probeHeld(addr);
      }
    }
    for (const [addr, instance] of this.held) fresh.set(addr, instance);
    this.listed = true;
    for (const [addr, old] of this.known) {
      const now = fresh.get(addr);
      if (now && identity(now) === identity(old)) continue;
      const pool = this.pools.get(addr);
      if (pool) { pool.close(); this.pools.delete(addr); } // left, or a new process there
      if (!now) this.forget(addr);
    }
    for (const [addr, refused] of this.wrongTarget) {
      const now = fresh.get(addr);
      if (!now || identity(now) !== refused) this.wrongTarget.delete(addr);
    }
    this.known = fresh;
    this.rebuild();
  }

  /** A held instance is probed every `probeInterval` ms; the first failed probe drops it. */
  async probeHeld(addr) {
    while (!this.closed && this.held.has(addr)) {
      if (!(await this.probe(this.held.get(addr)))) {
        if (this.held.delete(addr)) {
          this.logger.warn(`soa: ${this.service}: ${addr} did not answer a probe; dropping it`);
          this.update(this.source.instances, false);
        }
        return;
      }
      await new Promise((r) => { setTimeout(r, this.options.probeInterval).unref(); });
    }
  }

  forget(addr) {
    clearTimeout(this.ejected.get(addr));
    this.ejected.delete(addr);
    this.strikes.delete(addr);
    this.streak.delete(addr);
    this.inflight.delete(addr);
  }

  rebuild() {
    const chosen = [];
    for (const [addr, i] of this.known) {
      if (!this.ejected.has(addr) && !this.wrongTarget.has(addr) && this.idl.accepts(i, addr)) chosen.push(i);
    }
    this.picker = this.balancer.picker(chosen);
    this.usable = new Set(this.picker.instances.map((i) => this.addr(i)));
  }

  /** `method(...args)` on some instance; resolves to its result. */
  call(method, ...args) {
    return this.invoke(method, args);
  }

  /**
   * `method(...args)` with per-call options: `timeout` (ms) or `deadline` (a
   * performance.now() value), `hashKey` (for consistent_hash), `idempotent` (overrides the
   * client's list for this call).
   */
  invoke(method, args = [], opts = {}) {
    if (this.closed) return Promise.reject(new ConfigError('soa: the client is closed'));
    const deadline = opts.deadline !== undefined ? opts.deadline : performance.now() + (opts.timeout || this.options.timeout);
    let key = opts.hashKey;
    if (key === undefined && this.options.hashKey) key = this.options.hashKey(method, args);
    this.budget.deposit();
    this.counters.calls += 1;
    const instance = this.picker.pick(key);
    if (!instance) return Promise.reject(this.noInstance());
    // the first attempt; failures go on in retry(), off the common path
    return this.attempt(instance, method, args, deadline).catch((e) => this.retry(e, instance, method, args, opts, key, deadline));
  }

  noInstance() {
    const reason = this.known.size === 0 ? 'no instances registered' : `none of the ${this.known.size} registered instance(s) can take calls (weight 0, IDL mismatch or ejected)`;
    return new NoInstanceAvailable(this.service, reason);
  }

  /** After a failed attempt on `instance`: retry per the rules above, or throw. */
  async retry(error, instance, method, args, opts, key, deadline) {
    const idempotent = opts.idempotent !== undefined ? opts.idempotent : this.idempotent.has(method);
    const tried = new Set();
    const attempts = [];
    let unsentLeft = UNSENT_RETRIES;
    let sentLeft = this.options.retries;
    let e = error;
    let last = instance;
    for (;;) {
      if (!(e instanceof TransportError)) throw e; // answers, deadlines, caller errors
      attempts.push(e);
      tried.add(this.addr(last));
      const untried = [...this.usable].some((a) => !tried.has(a));
      if (!e.sent && unsentLeft > 0 && untried) unsentLeft -= 1;
      else if (e.sent && idempotent && sentLeft > 0 && this.budget.withdraw()) sentLeft -= 1;
      else break;
      if (performance.now() >= deadline) break;
      last = this.pick(key, tried);
      if (!last) break;
      this.counters.retries += 1;
      try {
        return await this.attempt(last, method, args, deadline);
      } catch (next) {
        e = next;
      }
    }
    if (attempts.length === 1) throw attempts[0];
    throw new RetryError(this.service, method, attempts);
  }

  /** `host:port` of an instance, formatted once per instance object. */
  addr(instance) {
    let a = this.addrs.get(instance);
    if (a === undefined) {
      a = address(instance);
      this.addrs.set(instance, a);
    }
    return a;
  }

  /** The balancer's pick, or when it chose an instance already tried, one not tried yet. */
  pick(key, tried) {
    const { picker } = this;
    let instance = picker.pick(key);
    if (!instance || !tried.size) return instance;
    for (let n = 0; n < 3 && tried.has(this.addr(instance)); n += 1) instance = picker.pick(key);
    if (!tried.has(this.addr(instance))) return instance;
    const rest = picker.instances.filter((i) => !tried.has(this.addr(i)));
    return rest.length ? rest[Math.floor(Math.random() * rest.length)] : instance;
  }

  pool(addr, instance) {
    let pool = this.pools.get(addr);
    if (!pool) {
      const o = this.options;
      pool = new Pool(instance, {
        size: o.poolSize, pipeline: o.pipeline, idleTimeout: o.poolIdleTimeout, connectTimeout: o.connectTimeout, tls: this.tls, ServiceClient: this.ServiceClient,
      });
      this.pools.set(addr, pool);
    }
    return pool;
  }

  async attempt(instance, method, args, deadline) {
    const addr = this.addr(instance);
    const pool = this.pools.get(addr) || this.pool(addr, instance);
    this.inflight.set(addr, (this.inflight.get(addr) || 0) + 1);
    let conn = null;
    try {
      conn = pool.take() || await pool.acquire(deadline);
      const headers = instance.theader ? this.headers(instance) : null;
      const wait = instance.theader ? deadline + this.options.lateGrace : deadline;
      const pending = conn.call(method, args, headers, wait, deadline);
      conn = null;
      const result = await pending;
      this.succeeded(addr);
      this.lastInstance = instance;
      return result;
    } catch (e) {
      if (e instanceof WrongTarget) this.refuse(addr, instance);
      else if (e instanceof ConnectError || e instanceof TransportError || (e instanceof DeadlineExceeded && !e.late && e.sent)) this.failed(addr);
      else if (!(e instanceof DeadlineExceeded)) this.succeeded(addr); // an answer
      throw e;
    } finally {
      this.inflight.set(addr, this.inflight.get(addr) - 1);
      if (conn) { conn.reserved -= 1; pool.wake(); } // reserved, never used
    }
  }

  /** The THeader info headers of every call to `instance`: one object per instance, so that a
   * connection encodes them once. */
  headers(instance) {
    let h = this.headerCache.get(instance);
    if (h === undefined) {
      h = { 'soa-service': this.service };
      if (instance.id) h['soa-instance'] = instance.id;
      if (this.options.caller) h['soa-caller'] = this.options.caller;
      this.headerCache.set(instance, h);
    }
    return h;
  }

  succeeded(addr) {
    if (this.strikes.size) this.strikes.delete(addr);
    if (this.streak.size && !this.ejected.has(addr)) this.streak.delete(addr);
  }

  failed(addr) {
    const count = (this.strikes.get(addr) || 0) + 1;
    this.strikes.set(addr, count);
    if (count < this.options.ejectAfter || this.ejected.has(addr) || !this.usable.has(addr) || this.usable.size < 2) return;
    const n = (this.streak.get(addr) || 0) + 1;
    this.streak.set(addr, n);
    this.strikes.delete(addr);
    this.counters.ejections += 1;
    const ms = Math.min(this.options.ejectCap, this.options.ejectBase * 2 ** (n - 1));
    this.logger.warn(`soa: ${this.service}: ejected ${addr} for ${ms} ms after ${count} failures in a row`);
    this.ejected.set(addr, this.readmitLater(addr, ms));
    this.rebuild();
  }

  /** After `ms`, a probe: an answer readmits `addr`, silence ejects it again for twice as long. */
  readmitLater(addr, ms) {
    const timer = setTimeout(async () => {
      const instance = this.known.get(addr);
      if (this.closed || !instance || this.ejected.get(addr) !== timer) return;
      if (await this.probe(instance)) {
        this.ejected.delete(addr);
        this.rebuild();
        return;
      }
      if (this.ejected.get(addr) !== timer) return;
      const n = (this.streak.get(addr) || 0) + 1;
      this.streak.set(addr, n);
      this.ejected.set(addr, this.readmitLater(addr, Math.min(this.options.ejectCap, this.options.ejectBase * 2 ** (n - 1))));
    }, ms);
    timer.unref();
    return timer;
  }

  refuse(addr, instance) {
    this.logger.warn(`soa: ${this.service}: ${addr} answered wrong-target; leaving it out until its registration changes`);
    this.counters.wrongTarget += 1;
    this.wrongTarget.set(addr, identity(instance));
    const pool = this.pools.get(addr);
    if (pool) { pool.close(); this.pools.delete(addr); }
    this.rebuild();
  }

  /** Connections opened so far, per address (what the pools did; for tests and metrics). */
  stats() {
    const out = {};
    for (const [addr, pool] of this.pools) out[addr] = { opened: pool.opened, open: pool.conns.length, idle: pool.conns.filter((c) => c.inflight.size === 0).length };
    return out;
  }

  /** Closes every pool, and the resolver this client made (see connect()). */
  async close() {
    this.closed = true;
    if (typeof this.source.removeListener === 'function') this.source.removeListener('change', this.onChange);
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
    for (const timer of this.ejected.values()) clearTimeout(timer);
    if (this.ownsSource && this.source.close) await this.source.close();
    if (this.ownsRegistry && this.source.registry) this.source.registry.close();
  }
}

module.exports = { Client, DEFAULTS };
