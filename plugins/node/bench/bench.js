'use strict';
/**
 * bench/plugin_node_bench.py's Node side: the raw Apache Thrift Node client (one connection to
 * one address, reused, concurrent calls pipelined on it) against the plugin (discovery through
 * etcd, balancing, pooling, retries, THeader when the server speaks it), on the same server,
 * taking turns within each round in this one process (`--slices` turns each). Prints one JSON line:
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
    slices: { type: 'string', default: '6' },
  },
});
const Bench = require(path.resolve(values.gen, 'BenchService'));

/** One case of a round: its turns' latencies, and the seconds they took. */
class Run {
  constructor(call) {
    this.call = call;
    this.latencies = [];
  }

  /** `concurrency` loops of `call()` for `seconds`; a call still running at the end finishes
   * and is left out (unless `record` is false: a warm-up). */
  async turn(concurrency, seconds, record = true) {
    const end = performance.now() + seconds * 1000;
    const out = record ? this.latencies : [];
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (;;) {
        const t0 = performance.now();
        await this.call();
        const t1 = performance.now();
        if (t1 > end) return;
        out.push(t1 - t0);
      }
    }));
  }

  result(seconds) {
    const latencies = this.latencies.sort((a, b) => a - b);
    const pct = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : 0);
    return { calls: latencies.length, seconds, p50_ms: pct(0.5), p99_ms: pct(0.99) };
  }
}

/** One round of several cases, as bench/harness.py's compare(): each is warmed up, then they
 * take `slices` turns of `seconds / slices` each, in an order that rotates every turn, so a
 * burst of load elsewhere on the machine falls on every case alike. */
async function compare(calls, concurrency, seconds, warmup, slices) {
  const runs = calls.map((call) => new Run(call));
  for (const run of runs) await run.turn(concurrency, warmup, false);
  for (let turn = 0; turn < slices; turn += 1) {
    for (let i = 0; i < runs.length; i += 1) {
      await runs[(turn + i) % runs.length].turn(concurrency, seconds / slices);
    }
  }
  return runs.map((run) => run.result(seconds));
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
        const [a, b, d] = await compare([raw.ping, () => plugin.call('ping'), () => plain.call('ping')],
          c, seconds, warmup, Number(values.slices));
        out.raw[c].push(a);
        out.plugin[c].push(b);
        out.plain[c].push(d);
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
