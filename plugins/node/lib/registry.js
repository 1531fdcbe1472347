'use strict';
/**
 * Reads soa registrations from etcd: `Registry.list(service)` once, or `Registry.resolve(service)`
 * for a Resolver kept current by a watch (list at revision R, watch from R + 1, list again when
 * the watch breaks; while etcd is unreachable the last set stays: stale beats empty).
 */

const { EventEmitter } = require('node:events');
const { Gateway, Compacted } = require('./etcd');
const { parseInstance, servicePrefix, address } = require('./instance');

/** key -> instance for one watched range; invalid values skipped with one warning each. */
class Mirror {
  constructor(prefix, logger) {
    this.prefix = prefix;
    this.logger = logger;
    this.entries = new Map();
    this.warned = new Map(); // key -> mod revision warned about
  }

  reset(kvs) {
    this.entries = new Map();
    for (const kv of kvs) this.put(kv);
  }

  apply(events) {
    for (const e of events) {
      if (e.type === 'delete') this.entries.delete(e.kv.key);
      else this.put(e.kv);
    }
  }

  put(kv) {
    let instance;
    try {
      instance = parseInstance(kv.value, kv.key, this.prefix);
    } catch (e) {
      this.entries.delete(kv.key);
      if (this.warned.get(kv.key) !== kv.modRevision) {
        this.warned.set(kv.key, kv.modRevision);
        this.logger.warn(`soa: skipping registry value ${kv.key}: ${e.message}`);
      }
      return;
    }
    if (instance.leaving) this.entries.delete(kv.key);
    else this.entries.set(kv.key, instance);
  }

  snapshot() {
    return [...this.entries.values()].sort((a, b) => (address(a) < address(b) ? -1 : 1));
  }
}

/** A service's current instance set. Emits 'change' (instances) on every change. */
class Resolver extends EventEmitter {
  constructor(registry, service) {
    super();
    this.registry = registry;
    this.service = service;
    this.range = servicePrefix(registry.prefix, service);
    this.mirror = new Mirror(registry.prefix, registry.logger);
    this.instances = [];
    this.controller = new AbortController();
    this.done = null;
  }

  publish(first = false) {
    const instances = this.mirror.snapshot();
    if (!first && JSON.stringify(instances) === JSON.stringify(this.instances)) return;
    this.instances = instances;
    try {
      this.emit('change', instances);
    } catch (e) {
      this.registry.logger.warn(`soa: a 'change' listener of ${this.service} threw: ${e.stack || e}`);
    }
  }

  async start() {
    const { kvs, revision } = await this.registry.gateway.range(this.range);
    this.mirror.reset(kvs);
    this.publish(true);
    this.done = this.run(revision);
    return this;
  }

  async run(revision) {
    const { signal } = this.controller;
    const gateway = this.registry.gateway;
    let delay = 100;
    while (!signal.aborted) {
      const started = Date.now();
      let error;
      try {
        await gateway.watch(this.range, revision + 1, (events) => {
          this.mirror.apply(events);
          this.publish();
        }, { signal });
      } catch (e) {
        error = e;
      }
      if (Date.now() - started > 5000) delay = 100; // the watch was healthy for a while
      while (!signal.aborted) {
        if (!(error instanceof Compacted)) {
          await sleep(delay, signal);
          delay = Math.min(delay * 2, 5000);
        }
        try {
          const listed = await gateway.range(this.range, { signal });
          revision = listed.revision;
          this.mirror.reset(listed.kvs);
          this.publish();
          break;
        } catch (e) {
          error = e;
        }
      }
    }
  }

  /** Stops the watch. */
  async close() {
    this.controller.abort();
    if (this.done) await this.done;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

class Registry {
  /**
   * `endpoints`: etcd URLs or host:port (default 127.0.0.1:2379); `prefix` (default '/soa');
   * `timeout`: per list request in ms (default 2000); `logger`: has warn() (default console).
   */
  constructor({ endpoints = ['127.0.0.1:2379'], prefix = '/soa', timeout = 2000, logger = console } = {}) {
    this.prefix = prefix;
    this.logger = logger;
    this.gateway = new Gateway(endpoints, timeout);
  }

  /** The live instances of `service` now, sorted by address. */
  async list(service) {
    const mirror = new Mirror(this.prefix, this.logger);
    mirror.reset((await this.gateway.range(servicePrefix(this.prefix, service))).kvs);
    return mirror.snapshot();
  }

  /** A Resolver for `service`, listed once (rejects when etcd is unreachable) then watched. */
  resolve(service) {
    return new Resolver(this, service).start();
  }
}

module.exports = { Registry, Resolver };
