'use strict';
/** A registry value (registry/SCHEMA.md): parsing with the vectors' error codes, and keys. */

const json = require('./json');

const { JsonNumber } = json;
const SERVICE_NAME = /^[a-z][a-z0-9_-]*$/;
const PROTOCOLS = ['binary', 'compact'];
const TRANSPORTS = ['buffered', 'framed'];
const INSTANCE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A value that breaks SCHEMA.md; `code` is one of the vectors' error codes. */
class InvalidInstance extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'InvalidInstance';
    this.code = code;
  }
}

/** `host:port`, with an IPv6 host in brackets. */
function address(instance) {
  const host = instance.host.includes(':') ? `[${instance.host}]` : instance.host;
  return `${host}:${instance.port}`;
}

/** `{prefix}/services/{service}/`: the range holding a service's instances. */
function servicePrefix(prefix, service) {
  return `${prefix.replace(/\/+$/, '')}/services/${service}/`;
}

function kind(v) {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return 'a number';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function present(obj, name) {
  return Object.prototype.hasOwnProperty.call(obj, name);
}

/** Reads one field: missing (required) -> missing_field, null (optional) -> default. */
function field(obj, name, check, def) {
  const required = def === undefined;
  if (!present(obj, name)) {
    if (required) throw new InvalidInstance('missing_field', `${name}: required`);
    return def;
  }
  const v = obj[name];
  if (v === null && !required) return def;
  return check(name, v);
}

function str(name, v) {
  if (typeof v !== 'string') throw new InvalidInstance('bad_type', `${name}: expected a string, got ${kind(v)}`);
  return v;
}

function int(name, v) {
  if (!(v instanceof JsonNumber) || !v.isInteger) {
    throw new InvalidInstance('bad_type', `${name}: expected an integer, got ${kind(v)}`);
  }
  if (!Number.isSafeInteger(v.value)) throw new InvalidInstance('bad_value', `${name}: out of range: ${v.text}`);
  return v.value;
}

function num(name, v) {
  if (!(v instanceof JsonNumber)) throw new InvalidInstance('bad_type', `${name}: expected a number, got ${kind(v)}`);
  return v.value;
}

function tags(name, v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof JsonNumber) {
    throw new InvalidInstance('bad_type', `${name}: expected an object, got ${kind(v)}`);
  }
  const out = {};
  for (const [k, tv] of Object.entries(v)) {
    if (typeof tv !== 'string') throw new InvalidInstance('bad_type', `${name}: values must be strings (${k})`);
    out[k] = tv;
  }
  return out;
}

function bool(name, v) {
  if (typeof v !== 'boolean') throw new InvalidInstance('bad_type', `${name}: expected a boolean, got ${kind(v)}`);
  return v;
}

function oneOf(name, value, allowed) {
  if (!allowed.includes(value)) throw new InvalidInstance('bad_value', `${name}: unknown: ${JSON.stringify(value)}`);
  return value;
}

/**
 * Parses a registry value (a Buffer or a string) into an instance with every field of the
 * schema filled in, plus `leaving` (true: the instance is on its way out; treat it as gone).
 * With `key`, the key's service and address must match the value's. Throws InvalidInstance.
 */
function parseInstance(value, key, prefix = '/soa') {
  let text = value;
  if (typeof value !== 'string') {
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(value);
    } catch (e) {
      throw new InvalidInstance('not_utf8', e.message);
    }
  }
  let data;
  try {
    data = json.parse(text);
  } catch (e) {
    throw new InvalidInstance('not_json', e.message);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data) || data instanceof JsonNumber) {
    throw new InvalidInstance('not_object', `expected a JSON object, got ${kind(data)}`);
  }
  const service = field(data, 'service', str);
  if (!SERVICE_NAME.test(service)) throw new InvalidInstance('bad_value', `service: not a service name: ${JSON.stringify(service)}`);
  const host = field(data, 'host', str);
  if (!host || /[/ \t[\]]/.test(host)) throw new InvalidInstance('bad_value', `host: not a host: ${JSON.stringify(host)}`);
  const port = field(data, 'port', int);
  if (port < 1 || port > 65535) throw new InvalidInstance('bad_value', `port: out of range: ${port}`);
  const weight = field(data, 'weight', int, 100);
  if (weight < 0) throw new InvalidInstance('bad_value', `weight: negative: ${weight}`);
  const instance = {
    service,
    host,
    port,
    weight,
    protocol: oneOf('protocol', field(data, 'protocol', str, 'binary'), PROTOCOLS),
    transport: oneOf('transport', field(data, 'transport', str, 'buffered'), TRANSPORTS),
    version: field(data, 'version', str, ''),
    idl_hash: field(data, 'idl_hash', str, ''),
    tags: field(data, 'tags', tags, {}),
    pid: field(data, 'pid', int, 0),
    started_at: field(data, 'started_at', num, 0),
    id: field(data, 'id', str, ''),
    theader: false,
    tls: false,
    metrics_port: 0,
  };
  if (instance.id !== '' && !INSTANCE_ID.test(instance.id)) {
    throw new InvalidInstance('bad_value', `id: not an instance id: ${JSON.stringify(instance.id)}`);
  }
  instance.theader = field(data, 'theader', bool, false);
  instance.tls = field(data, 'tls', bool, false);
  instance.metrics_port = field(data, 'metrics_port', int, 0);
  if (instance.metrics_port < 0 || instance.metrics_port > 65535) {
    throw new InvalidInstance('bad_value', `metrics_port: out of range: ${instance.metrics_port}`);
  }
  if (key !== undefined && key !== null) {
    const want = servicePrefix(prefix, service) + address(instance);
    if (key !== want) throw new InvalidInstance('key_mismatch', `key ${key} does not match ${want}`);
  }
  Object.defineProperty(instance, 'leaving', { value: data.leaving === true, enumerable: false });
  return instance;
}

module.exports = { parseInstance, InvalidInstance, address, servicePrefix };
