'use strict';
/**
 * soa for Node.js: find soa services in etcd (with the npm etcd3 client) and call them with
 * Apache Thrift generated code, over pooled connections, with deadlines, retries, outlier
 * ejection and the balancers of registry/BALANCING.md.
 *
 *   const soa = require('@soa/plugin');
 *   const CatalogService = require('./gen-nodejs/CatalogService');
 *   const catalog = await soa.connect('catalog', CatalogService, { etcd: { endpoints: ['127.0.0.1:2379'] } });
 *   console.log(await catalog.call('ping'));
 *   await catalog.close();
 */

const { Registry, Resolver } = require('./registry');
const { Client, DEFAULTS } = require('./client');
const balancers = require('./balancers');
const errors = require('./errors');
const theader = require('./theader');
const { parseInstance, InvalidInstance, address, servicePrefix } = require('./instance');

/**
 * Resolves `service` (kept current by a watch) and returns a Client for it. Options: those of
 * Registry (`etcd`, or `endpoints`/`prefix`; `logger`) or `registry` itself, and
 * those of Client. Rejects with DiscoveryError when etcd cannot be read.
 */
async function connect(service, ServiceClient, options = {}) {
  const ownsRegistry = !options.registry;
  const registry = options.registry || new Registry(options);
  let resolver;
  try {
    resolver = await registry.resolve(service);
  } catch (e) {
    if (ownsRegistry) registry.close();
    throw e;
  }
  let client;
  try {
    client = new Client(resolver, ServiceClient, { service, ...options });
  } catch (e) {
    await resolver.close();
    if (ownsRegistry) registry.close();
    throw e;
  }
  client.ownsSource = true;
  client.ownsRegistry = ownsRegistry;
  return client;
}

module.exports = {
  connect,
  Registry,
  Resolver,
  Client,
  DEFAULTS,
  balancers,
  theader,
  parseInstance,
  InvalidInstance,
  address,
  servicePrefix,
  ...errors,
};
