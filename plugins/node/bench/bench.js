'use strict';
/**
 * bench/plugin_node_bench.py's Node side: the raw Apache Thrift Node client (one connection to
 * one address, reused, concurrent calls pipelined on it) against the plugin (discovery through
 * etcd, balancing, pooling, retries, THeader when the server speaks it), on the same server,
 * alternating round by round in this one process. Prints one JSON line:
 * {"raw": {"1": [round...], "64": [...]}, "plugin": {...}, "plain": {...}}, each round
 * {calls, seconds, p50_ms, p99_ms}; "plain" is the plugin with `theader: false` (plain Thrift
 * to the same server), which tells the plugin's own cost from the server's THeader path.
 *
 *   node bench.js --gen DIR --port PORT --etcd HOST:PORT --prefix /p --seconds 1.2 --rounds 5
 */

const path = require('node:path');
const { parseArgs } = require('node:util');
const { performance } = require('node:perf_hooks');
const thrift = require('thrift');
const soa = require('..');

const { values } = parseArgs({
  options: {
    gen: { type: 'string' }, port: { type: 'string' }, etcd: { type: 'string' }, prefix: { type: 'string' },
    seconds: { type: 'string', default: '1.2' }, rounds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,64' }, warmup: { type: 'string', default: '0.3' },
  },
});
const Bench = require(path.resolve(values.gen, 'BenchService'));

/** `concurrency` loops of `call()` for warmup + seconds; latencies after the warm-up. */
async function measure(call, concurrency, seconds, warmup) {
  const begin = performance.now() + warmup * 1000;
  const end = begin + seconds * 1000;
  const latencies = [];
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (;;) {
      const t0 = performance.now();
      await call();
      const t1 = performance.now();
      if (t1 > end) return;
      if (t0 >= begin) latencies.push(t1 - t0);
    }
  }));
  latencies.sort((a, b) => a - b);
  const pct = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : 0);
  return { calls: latencies.length, seconds, p50_ms: pct(0.5), p99_ms: pct(0.99) };
}

async function rawClient(port) {
  const connection = thrift.createConnection('127.0.0.1', port, { transport: thrift.TBufferedTransport, protocol: thrift.TBinaryProtocol });
  await new Promise((resolve, reject) => { connection.once('connect', resolve); connection.once('error', reject); });
  connection.on('error', (e) => { throw e; });
  const client = thrift.createClient(Bench, connection);
  return {
    ping: () => new Promise((resolve, reject) => client.ping((err) => (err ? reject(err) : resolve()))),
    close: () => connection.end(),
  };
}

async function main() {
  const seconds = Number(values.seconds);
  const warmup = Number(values.warmup);
  const raw = await rawClient(Number(values.port));
  const plugin = await soa.connect('bench', Bench, {
    etcd: { endpoints: [values.etcd], prefix: values.prefix }, timeout: 30000, idempotent: ['ping'],
  });
  for (const until = Date.now() + 15000; !plugin.source.instances.length;) { // registration is asynchronous
    if (Date.now() > until) throw new Error('the server never registered');
    await new Promise((r) => { setTimeout(r, 20); });
  }
  const plain = new soa.Client(plugin.source, Bench, { service: 'bench', timeout: 30000, idempotent: ['ping'], theader: false });
  const out = { raw: {}, plugin: {}, plain: {}, theader: plugin.source.instances.map((i) => i.theader) };
  try {
    for (const c of values.concurrency.split(',').map(Number)) {
      out.raw[c] = [];
      out.plugin[c] = [];
      out.plain[c] = [];
      for (let r = 0; r < Number(values.rounds); r += 1) {
        out.raw[c].push(await measure(raw.ping, c, seconds, warmup));
        out.plugin[c].push(await measure(() => plugin.call('ping'), c, seconds, warmup));
        out.plain[c].push(await measure(() => plain.call('ping'), c, seconds, warmup));
      }
    }
    out.connections = plugin.stats();
  } finally {
    raw.close();
    await plain.close();
    await plugin.close();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
