'use strict';
/**
 * The live tests' Node side (driven by tests/test_plugin_node.py): one soa client, commanded
 * by JSON lines on stdin, answering one JSON line each on stdout.
 *
 *   node driver.js --gen DIR --module EchoService --service echo --options JSON
 *
 * Commands ({"op": ...}): "instances"; "calls" {method, args, n, concurrency, options} (a
 * summary: calls, failed, served by address, errors); "load" {method, concurrency} starts calls
 * in a loop until "stop" (the same summary); "first" {address, method, timeout_ms} (ms until a
 * call was served by that address); "call" {method, args, options} (one call: result or error
 * name, message, late); "stats" (pool counters); "close".
 */

const path = require('node:path');
const readline = require('node:readline');
const { parseArgs } = require('node:util');
const { performance } = require('node:perf_hooks');
const soa = require('../..');

const { values } = parseArgs({
  options: {
    gen: { type: 'string' }, module: { type: 'string' }, service: { type: 'string' }, options: { type: 'string', default: '{}' },
  },
});
const generated = require(path.resolve(values.gen, values.module));
const warnings = [];
const logger = { warn: (m) => { warnings.push(m); process.stderr.write(`${m}\n`); } };

function summary() {
  return { calls: 0, failed: 0, served: {}, errors: [] };
}

async function one(client, method, args, options, out) {
  out.calls += 1;
  try {
    const result = await client.invoke(method, args, options);
    const addr = soa.address(client.lastInstance);
    out.served[addr] = (out.served[addr] || 0) + 1;
    return result;
  } catch (e) {
    out.failed += 1;
    if (out.errors.length < 20) out.errors.push(`${e.name}: ${e.message}`);
    return undefined;
  }
}

async function main() {
  const options = JSON.parse(values.options);
  let client = await soa.connect(values.service, generated, { logger, ...options });
  let load = null;
  const handlers = {
    instances: () => ({ instances: client.source.instances.map(soa.address) }),
    warnings: () => ({ warnings }),
    stats: () => ({ stats: client.stats(), counters: client.counters }),
    /** A new client with these options over the same resolver (the old one's pools closed). */
    async use({ options: o = {} }) {
      const fresh = new soa.Client(client.source, generated, { logger, ...options, ...o, service: values.service });
      fresh.ownsSource = true;
      fresh.ownsRegistry = true;
      client.ownsSource = false;
      client.ownsRegistry = false;
      await client.close();
      client = fresh;
      return { balancer: client.balancer.name };
    },
    async calls({ method, args = [], n, concurrency = 1, options: o = {} }) {
      const out = summary();
      let next = 0;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next += 1;
          await one(client, method, args, o, out);
        }
      }));
      return out;
    },
    load({ method, args = [], concurrency = 8, options: o = {} }) {
      const out = summary();
      const state = { stop: false, out };
      state.done = Promise.all(Array.from({ length: concurrency }, async () => {
        while (!state.stop) await one(client, method, args, o, out);
      }));
      load = state;
      return { started: true };
    },
    async stop() {
      load.stop = true;
      await load.done;
      return { ...load.out, counters: client.counters };
    },
    async first({ address, method, args = [], timeout_ms: timeoutMs = 5000 }) {
      const start = performance.now();
      const out = summary();
      while (performance.now() - start < timeoutMs) {
        await one(client, method, args, {}, out);
        if (out.served[address]) return { ms: performance.now() - start, ...out };
        await new Promise((r) => { setTimeout(r, 5); });
      }
      return { ms: null, ...out };
    },
    async call({ method, args = [], options: o = {} }) {
      try {
        const result = await client.invoke(method, args, o);
        return { result: result && typeof result.toNumber === 'function' ? result.toNumber() : result, address: soa.address(client.lastInstance) };
      } catch (e) {
        return { error: e.name, message: e.message, late: e.late === true, sent: e.sent };
      }
    },
    async close() {
      await client.close();
      return { closed: true };
    },
  };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const command = JSON.parse(line);
    const answer = await handlers[command.op](command);
    process.stdout.write(`${JSON.stringify(answer, (k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`);
    if (command.op === 'close') break;
  }
  process.stdin.destroy();
}

main().catch((e) => {
  process.stderr.write(e instanceof soa.SoaError ? `${e.name}: ${e.message}\n` : `${e.stack || e}\n`);
  process.exit(1);
});
