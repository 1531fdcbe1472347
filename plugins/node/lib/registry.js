'use strict';
/**
 * Reads soa registrations from etcd with the npm `etcd3` client (gRPC): `Registry.list(service)`
 * once, or `Registry.resolve(service)` for a Resolver kept current by a watch. As SCHEMA.md
 * "Discovery" says: list at revision R, watch from R + 1; when the watch is cancelled (its start
 * revision was compacted) list again and watch anew; while etcd is unreachable the last set
 * stays (stale beats empty) and etcd3 reconnects the watch, which resumes where it stopped.
 * etcd auth (user/password, sent as a token in call metadata, so it works over plaintext too)
 * and TLS (ca/cert/key files) come from the `etcd` options.
 */

const fs = require('node:fs');
const { EventEmitter } = require('node:events');
const { Etcd3, isRecoverableError } = require('etcd3');
const cockatiel = require('cockatiel');
const { parseInstance, servicePrefix, address } = require('./instance');
const { ConfigError, DiscoveryError, oneLine } = require('./errors');

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

  put(kv) {
    const key = kv.key.toString('utf8');
    let instance;
    try {
      instance = parseInstance(kv.value, key, this.prefix);
    } catch (e) {
      this.entries.delete(key);
      if (this.warned.get(key) !== String(kv.mod_revision)) {
        this.warned.set(key, String(kv.mod_revision));
        this.logger.warn(`soa: skipping registry value ${key}: ${e.message}`);
      }
      return;
    }
    if (instance.leaving) this.entries.delete(key);
    else this.entries.set(key, instance);
  }

  delete(kv) {
    this.entries.delete(kv.key.toString('utf8'));
  }

  snapshot() {
    return [...this.entries.values()].sort((a, b) => (address(a) < address(b) ? -1 : 1));
  }
}

function readFile(path, what) {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new ConfigError(`soa: etcd.tls.${what}: cannot read ${path}: ${e.code || e.message}`);
  }
}

/** etcd3's options from ours. */
function etcdOptions({ endpoints, user, password, tls, timeout }) {
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw new ConfigError('soa: etcd.endpoints: expected at least one endpoint');
  if ((user && !password) || (!user && password)) throw new ConfigError('soa: etcd: user and password go together');
  let hosts = endpoints.map((e) => String(e).trim().replace(/\/+$/, ''));
  const options = {
    hosts,
    dialTimeout: timeout,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      host: () => cockatiel.circuitBreaker(cockatiel.handleWhen(isRecoverableError), {
        halfOpenAfter: 1000, breaker: new cockatiel.ConsecutiveBreaker(3),
      }),
      global: cockatiel.retry(cockatiel.handleWhen(isRecoverableError), { maxAttempts: Math.max(2, hosts.length) }),
      watchBackoff: new cockatiel.ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }),
    },
  };
  if (user) options.auth = { username: user, password, callOptions: () => ({ deadline: Date.now() + timeout }) };
  if (tls) {
    hosts = hosts.map((h) => (h.includes('://') ? h.replace(/^http:/, 'https:') : `https://${h}`));
    options.hosts = hosts;
    options.credentials = { rootCertificate: tls.ca ? readFile(tls.ca, 'ca') : undefined };
    if (tls.cert || tls.key) {
      if (!tls.cert || !tls.key) throw new ConfigError('soa: etcd.tls: cert and key go together');
      options.credentials.certChain = readFile(tls.cert, 'cert');
      options.credentials.privateKey = readFile(tls.key, 'key');
    }
  }
  return options;
}

/** A service's current instance set (`instances`, sorted by address). Emits 'change'
 * (instances) on every change of the set; `close()` stops the watch. */
class Resolver extends EventEmitter {
  constructor(registry, service) {
    super();
    this.registry = registry;
    this.service = service;
    this.range = servicePrefix(registry.prefix, service);
    this.mirror = new Mirror(registry.prefix, registry.logger);
    this.instances = [];
    this.watcher = null;
    this.closed = false;
    this.relisting = null;
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

  /** Lists, publishes, and starts the watch from the listing's revision + 1. */
  async start() {
    const revision = await this.list();
    this.publish(true);
    await this.watch(revision);
    return this;
  }

  async list() {
    const res = await this.registry.range(this.range);
    this.mirror.reset(res.kvs);
    return BigInt(res.header.revision);
  }

  async watch(revision) {
    const watcher = await this.registry.etcd.watch().prefix(this.range).startRevision(String(revision + 1n)).create();
    if (this.closed) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        if (ev.type === 'Delete') this.mirror.delete(ev.kv); else this.mirror.put(ev.kv);
      }
      this.publish();
    });
    watcher.on('error', (e) => this.restart(watcher, e)); // cancelled: compacted, or refused
  }

  /** The watch was cancelled: list again (until etcd answers), then watch anew. */
  restart(watcher, cause) {
    if (this.closed || this.watcher !== watcher || this.relisting) return;
    this.watcher = null;
    watcher.removeAllListeners('data');
    watcher.cancel().catch(() => {});
    this.registry.logger.warn(`soa: the watch of ${this.service} stopped (${cause.message}); listing again`);
    this.relisting = (async () => {
      for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 1000)) {
        try {
          const revision = await this.list();
          this.publish();
          await this.watch(revision);
          return;
        } catch (e) {
          await new Promise((r) => { setTimeout(r, delay).unref(); });
        }
      }
    })().finally(() => { this.relisting = null; });
  }

  async close() {
    this.closed = true;
    if (this.watcher) await this.watcher.cancel().catch(() => {});
    this.watcher = null;
  }
}

class Registry {
  /**
   * Options: `etcd: {endpoints, prefix, user, password, tls: {ca, cert, key}, timeout}` (tls:
   * file paths; timeout: ms per etcd request, default 2000), or `endpoints` and `prefix` at the
   * top;
   * `logger`: has warn() (default console). Throws ConfigError on bad options.
   */
  constructor(options = {}) {
    const etcd = options.etcd || {};
    this.prefix = (etcd.prefix || options.prefix || '/soa').replace(/\/+$/, '');
    this.logger = options.logger || console;
    this.timeout = etcd.timeout || 2000;
    this.etcd = new Etcd3(etcdOptions({
      endpoints: etcd.endpoints || options.endpoints || ['127.0.0.1:2379'],
      user: etcd.user, password: etcd.password, tls: etcd.tls, timeout: this.timeout,
    }));
  }

  /** Every key under `range`: etcd's RangeResponse; DiscoveryError when etcd cannot answer. */
  async range(range) {
    try {
      return await this.etcd.getAll().prefix(range).exec();
    } catch (e) {
      throw new DiscoveryError(`soa: etcd: cannot list ${range}: ${oneLine(e)}`, { cause: e });
    }
  }

  /** The live instances of `service` now, sorted by address. */
  async list(service) {
    const mirror = new Mirror(this.prefix, this.logger);
    mirror.reset((await this.range(servicePrefix(this.prefix, service))).kvs);
    return mirror.snapshot();
  }

  /** A Resolver for `service`, listed once (rejects when etcd cannot answer) then watched. */
  async resolve(service) {
    const resolver = new Resolver(this, service);
    try {
      return await resolver.start();
    } catch (e) {
      await resolver.close();
      throw e instanceof DiscoveryError ? e : new DiscoveryError(`soa: etcd: cannot watch ${service}: ${oneLine(e)}`, { cause: e });
    }
  }

  close() {
    this.etcd.close();
  }
}

module.exports = { Registry, Resolver, Mirror };
