'use strict';
/**
 * soa for Node.js: find soa services in etcd (through its v3 JSON gateway, no grpc) and call
 * them with Apache Thrift generated code.
 *
 *   const soa = require('@soa/plugin');
 *   const CatalogService = require('./gen-nodejs/CatalogService');
 *   const catalog = await soa.connect('catalog', CatalogService, { endpoints: ['127.0.0.1:2379'] });
 *   console.log(await catalog.call((c) => c.ping()), catalog.lastInstance);
 *   await catalog.close();
 */

const { Registry, Resolver } = require('./registry');
const { Client, NoInstanceAvailable, CallTimeout, TransportError } = require('./client');
const { Balancer } = require('./balancer');
const { parseInstance, InvalidInstance, address, servicePrefix } = require('./instance');

/**
 * Resolves `service` (kept current by a watch) and returns a Client for it. Options: those of
 * Registry (endpoints, prefix, timeout, logger) or `registry` itself, and those of Client.
 */
async function connect(service, ServiceClient, options = {}) {
  const registry = options.registry || new Registry(options);
  const resolver = await registry.resolve(service);
  const client = new Client(resolver, ServiceClient, { service, ...options });
  client.ownsSource = true;
  return client;
}

module.exports = {
  connect,
  Registry,
  Resolver,
  Client,
  Balancer,
  parseInstance,
  InvalidInstance,
  NoInstanceAvailable,
  CallTimeout,
  TransportError,
  address,
  servicePrefix,
};
