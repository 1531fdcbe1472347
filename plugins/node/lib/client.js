'use strict';
/**
 * Calls one service's instances with Apache Thrift generated client code: smooth weighted round
 * robin, the protocol and transport each instance registered, connect and call timeouts, and
 * failover to the next instance when a connection cannot be made (nothing was sent yet, so any
 * call may go elsewhere). Each call has its own connection, so none inherits a broken one.
 */

const thrift = require('thrift');
const { Balancer } = require('./balancer');
const { address } = require('./instance');

/** No instance could be connected to: the set was empty, all weights 0, or all refused. */
class NoInstanceAvailable extends Error {
  constructor(service, tried, errors) {
    super(tried.length
      ? `soa: no instance of ${service} reachable (tried ${tried.join(', ')}): ${errors.map((e) => e.message).join('; ')}`
      : `soa: no instance of ${service} available`);
    this.name = 'NoInstanceAvailable';
    this.tried = tried;
    this.errors = errors;
  }
}

/** The call did not finish within callTimeout; it may have run on the server. */
class CallTimeout extends Error {
  constructor(instance, ms) {
    super(`soa: call to ${address(instance)} timed out after ${ms} ms`);
    this.name = 'CallTimeout';
    this.instance = instance;
  }
}

/** The connection broke during the call; it may have run on the server. */
class TransportError extends Error {
  constructor(instance, cause) {
    super(`soa: connection to ${address(instance)} broke: ${cause && cause.message ? cause.message : cause}`);
    this.name = 'TransportError';
    this.instance = instance;
    this.cause = cause;
  }
}

const TRANSPORTS = { buffered: thrift.TBufferedTransport, framed: thrift.TFramedTransport };
const PROTOCOLS = { binary: thrift.TBinaryProtocol, compact: thrift.TCompactProtocol };

/** Opens a Thrift connection to `instance`; rejects (having sent nothing) if it cannot. */
function open(instance, timeoutMs) {
  return new Promise((resolve, reject) => {
    const connection = thrift.createConnection(instance.host, instance.port, {
      transport: TRANSPORTS[instance.transport],
      protocol: PROTOCOLS[instance.protocol],
    });
    const fail = (error) => {
      clearTimeout(timer);
      connection.removeAllListeners('connect');
      connection.on('error', () => {}); // a late error of a socket given up on
      connection.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
    connection.once('error', fail);
    connection.once('close', () => fail(new Error('connection closed')));
    connection.once('connect', () => {
      clearTimeout(timer);
      connection.removeAllListeners('error');
      connection.removeAllListeners('close');
      resolve(connection);
    });
  });
}

class Client {
  /**
   * `source`: a Resolver, or anything with an `instances` array. `ServiceClient`: the generated
   * service module (e.g. require('./gen-nodejs/CatalogService')) or its Client class.
   * Options: `service` (a name for errors), `connectTimeout` (ms, default 500), `callTimeout`
   * (ms, default 5000), `onConnectError(instance, error)` (hears of each failover),
   * `ejectFor` (ms an instance that refused is passed over while others remain; default 2000,
   * 0 disables).
   */
  constructor(source, ServiceClient, options = {}) {
    this.source = source;
    this.ServiceClient = ServiceClient;
    this.service = options.service || source.service || 'service';
    this.connectTimeout = options.connectTimeout || 500;
    this.callTimeout = options.callTimeout || 5000;
    this.onConnectError = options.onConnectError || null;
    this.ejectFor = options.ejectFor === undefined ? 2000 : options.ejectFor;
    this.ejected = new Map(); // address -> passed over until (ms since the epoch)
    this.balancer = new Balancer();
    this.lastInstance = null; // the instance that served the most recent call
    this.ownsSource = false;
  }

  /**
   * Runs `fn(client)` with a generated client connected to the next instance, and returns what
   * its promise resolves to, e.g. `await soa.call((c) => c.ping())`. Refused or timed-out
   * connections go to the next instance until each has been tried; `fn` runs at most once.
   */
  async call(fn) {
    const tried = [];
    const errors = [];
    for (;;) {
      const set = this.source.instances;
      const instance = this.balancer.pick(set, this.passOver(tried))
        || this.balancer.pick(set, new Set(tried)); // only ejected ones left: try them too
      if (!instance) throw new NoInstanceAvailable(this.service, tried, errors);
      let connection;
      try {
        connection = await open(instance, this.connectTimeout);
      } catch (e) {
        if (this.ejectFor > 0) this.ejected.set(address(instance), Date.now() + this.ejectFor);
        if (this.onConnectError) this.onConnectError(instance, e);
        tried.push(address(instance));
        errors.push(e);
        continue;
      }
      this.ejected.delete(address(instance));
      this.lastInstance = instance;
      return this.invoke(connection, instance, fn);
    }
  }

  /** The addresses tried, plus those ejected until later than now. */
  passOver(tried) {
    const now = Date.now();
    const skip = new Set(tried);
    for (const [addr, until] of this.ejected) {
      if (until > now) skip.add(addr);
      else this.ejected.delete(addr);
    }
    return skip;
  }

  invoke(connection, instance, fn) {
    const client = thrift.createClient(this.ServiceClient, connection);
    let timer;
    return new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new CallTimeout(instance, this.callTimeout)), this.callTimeout);
      connection.on('error', (e) => reject(new TransportError(instance, e)));
      connection.on('close', () => reject(new TransportError(instance, new Error('closed by the server'))));
      Promise.resolve().then(() => fn(client)).then(resolve, reject);
    }).finally(() => {
      clearTimeout(timer);
      connection.destroy();
    });
  }

  /** Stops the resolver this client made (see connect()). */
  async close() {
    if (this.ownsSource && this.source.close) await this.source.close();
  }
}

module.exports = { Client, NoInstanceAvailable, CallTimeout, TransportError };
