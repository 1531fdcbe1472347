'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const soa = require('..');
const h = require('./helpers');

const Echo = h.echoService();
const client = (instances, options = {}) => new soa.Client({ instances }, Echo, { service: 'echo', logger: h.quiet(), ...options });

test('calls go over a bounded pool of reused connections', async () => {
  const server = await h.plainServer();
  const c = client([server.instance], { poolSize: 3 });
  try {
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => c.call('echo', `m${i}`)));
    assert.equal(results[59], 'm59');
    for (let i = 0; i < 20; i += 1) assert.equal(await c.call('whoami'), server.port);
    assert.equal(server.connections, 3, 'at most poolSize connections, then reused');
    assert.equal(c.stats()[soa.address(server.instance)].opened, 3);
  } finally {
    await c.close();
    await server.close();
  }
});

test('framed and compact instances are called in their own format', async () => {
  const server = await h.plainServer({ transport: 'framed', protocol: 'compact' });
  const c = client([server.instance]);
  try {
    assert.equal(await c.call('echo', 'é'.repeat(5000)), 'é'.repeat(5000));
  } finally {
    await c.close();
    await server.close();
  }
});

test('idle connections close after the idle timeout; the next call opens a new one', async () => {
  const server = await h.plainServer();
  const c = client([server.instance], { poolIdleTimeout: 100 });
  try {
    await c.call('ping');
    const deadline = Date.now() + 3000;
    while (c.stats()[soa.address(server.instance)].open > 0) {
      assert.ok(Date.now() < deadline, 'the idle connection was never closed');
      await new Promise((r) => { setTimeout(r, 20); });
    }
    await c.call('ping');
    assert.equal(server.connections, 2);
  } finally {
    await c.close();
    await server.close();
  }
});

test('IDL exceptions and TApplicationException are answers: passed through, not retried', async () => {
  const a = await h.plainServer();
  const b = await h.plainServer();
  const c = client([a.instance, b.instance], { idempotent: ['crash', 'place'] });
  try {
    await assert.rejects(c.call('crash'), (e) => e.name === 'TApplicationException');
    assert.equal(c.counters.retries, 0);
  } finally {
    await c.close();
    await a.close();
    await b.close();
  }
});

test('a refused connection goes to the next instance; repeated failures eject it', async () => {
  const server = await h.plainServer();
  const dead = h.inst(await h.deadPort());
  const c = client([dead, server.instance], { balancer: 'round_robin', ejectAfter: 3, ejectBase: 60000 });
  try {
    for (let n = 0; n < 10; n += 1) assert.equal(await c.call('bump', 'k') > 0, true); // not idempotent, yet unsent
    assert.equal(c.counters.ejections, 1);
    assert.ok(c.counters.retries >= 3 && c.counters.retries <= 5, JSON.stringify(c.counters));
    assert.deepEqual(c.picker.instances.map((i) => i.port), [server.port]);
  } finally {
    await c.close();
    await server.close();
  }
});

test('the last usable instance is never ejected; with none reachable the error says so', async () => {
  const dead = h.inst(await h.deadPort());
  const c = client([dead], { ejectAfter: 1 });
  for (let n = 0; n < 3; n += 1) await assert.rejects(c.call('ping'), soa.ConnectError);
  assert.equal(c.counters.ejections, 0);
  await assert.rejects(client([]).call('ping'), (e) => e instanceof soa.NoInstanceAvailable && /no instances registered/.test(e.message));
});

test('after sending, only idempotent methods are retried', async () => {
  const drop = await h.droppingServer();
  const server = await h.plainServer();
  const c = client([drop.instance, server.instance], { balancer: 'round_robin', idempotent: ['whoami'], ejectAfter: 100 });
  try {
    c.picker = new soa.balancers.RoundRobin().picker(c.picker.instances, { start: 0 });
    assert.equal(await c.call('whoami'), server.port); // dropped mid-call, retried on the other
    assert.equal(c.counters.retries, 1);
    c.picker = new soa.balancers.RoundRobin().picker(c.picker.instances, { start: 0 });
    await assert.rejects(c.call('bump', 'k'), (e) => e instanceof soa.TransportError && e.sent === true);
    assert.equal(server.calls.bump, undefined, 'a call that may have run is not sent again');
  } finally {
    await c.close();
    await drop.close();
    await server.close();
  }
});

test('the retry budget bounds retries after sending', async () => {
  const drops = [await h.droppingServer(), await h.droppingServer()];
  const c = client(drops.map((d) => d.instance), { idempotent: ['ping'], retryBudget: 0.1, ejectAfter: 1000 });
  c.budget.reserve = 0;
  c.budget.minPerSecond = 0;
  try {
    for (let n = 0; n < 10; n += 1) await assert.rejects(c.call('ping'), soa.SoaError);
    assert.equal(c.counters.retries, 1, '10 calls at 0.1 pay for one retry');
  } finally {
    await c.close();
    for (const d of drops) await d.close();
  }
});

test('a call that does not answer in time fails with DeadlineExceeded and is not retried', async () => {
  const server = await h.plainServer();
  const other = await h.plainServer();
  const c = client([server.instance, other.instance], { idempotent: ['slow'] });
  try {
    await assert.rejects(c.invoke('slow', [300], { timeout: 50 }), (e) => e instanceof soa.DeadlineExceeded && e.sent && !e.late);
    assert.equal(c.counters.retries, 0);
    assert.equal((server.calls.slow || 0) + (other.calls.slow || 0), 1);
  } finally {
    await c.close();
    await server.close();
    await other.close();
  }
});

test('THeader instances get the deadline and identity, and their refusals are understood', async () => {
  const server = await h.theaderServer({ id: 'inst-1' });
  const c = client([server.instance], { caller: 'tests', lateGrace: 2000 });
  try {
    assert.equal(await c.invoke('echo', ['hi'], { timeout: 700 }), 'hi');
    const sent = server.headers[0];
    assert.equal(sent['soa-service'], 'echo');
    assert.equal(sent['soa-instance'], 'inst-1');
    assert.equal(sent['soa-caller'], 'tests');
    assert.match(sent['soa-deadline-ms'], /^\d+$/);
    assert.ok(Number(sent['soa-deadline-ms']) > 600 && Number(sent['soa-deadline-ms']) <= 700, sent['soa-deadline-ms']);
    await assert.rejects(c.invoke('bump', ['k'], { timeout: 1 }), (e) => e instanceof soa.DeadlineExceeded && e.late && !e.sent);
    assert.equal(server.headers[1]['soa-deadline-ms'], '1');
    assert.equal(server.calls.bump, undefined);
  } finally {
    await c.close();
    await server.close();
  }
});

test('wrong-target: retried on another instance, and the refusing one is left out', async () => {
  const good = await h.theaderServer({ id: 'good' });
  const moved = await h.theaderServer({ id: 'someone-else' });
  const stale = { ...moved.instance, id: 'gone' }; // the registry still names the old instance
  const c = client([stale, good.instance], { balancer: 'round_robin' });
  try {
    c.picker = new soa.balancers.RoundRobin().picker(c.picker.instances, { start: 0 });
    assert.equal((await c.call('bump', 'k')).toNumber(), 1); // not idempotent, but it was never executed
    assert.equal(moved.calls.bump, undefined);
    assert.equal(c.counters.wrongTarget, 1);
    assert.deepEqual(c.picker.instances.map((i) => i.id), ['good']);
  } finally {
    await c.close();
    await good.close();
    await moved.close();
  }
});

test('an instance that leaves has its pool closed; a changed registration gets new connections', async () => {
  const a = await h.plainServer();
  const b = await h.plainServer();
  const source = new EventEmitter();
  source.instances = [a.instance, b.instance];
  const c = new soa.Client(source, Echo, { service: 'echo', logger: h.quiet() });
  try {
    await Promise.all(Array.from({ length: 10 }, () => c.call('ping')));
    assert.equal(a.sockets.size > 0, true);
    source.instances = [b.instance];
    source.emit('change', source.instances);
    const deadline = Date.now() + 2000;
    while (a.sockets.size > 0) {
      assert.ok(Date.now() < deadline, 'the pool of the instance that left stayed open');
      await new Promise((r) => { setTimeout(r, 10); });
    }
    assert.deepEqual(Object.keys(c.stats()), [soa.address(b.instance)]);
    const before = b.connections;
    source.emit('change', [{ ...b.instance, pid: 99 }]); // a new process at the same address
    await c.call('ping');
    assert.equal(b.connections, before + 1);
  } finally {
    await c.close();
    await a.close();
    await b.close();
  }
});

test('IDL mismatch: warn uses the instance once warned, exclude leaves it out', async () => {
  const server = await h.plainServer();
  const theirs = { ...server.instance, idl_hash: 'sha256:aaaaaaaaaaaaaaaa' };
  const logger = h.quiet();
  const warn = client([theirs], { idlHash: 'sha256:bbbbbbbbbbbbbbbb', logger });
  const exclude = client([theirs], { idlHash: 'sha256:bbbbbbbbbbbbbbbb', idlMismatch: 'exclude', logger });
  const same = client([theirs], { idlHash: 'sha256:aaaaaaaaaaaaaaaa', idlMismatch: 'exclude', logger });
  try {
    await warn.call('ping');
    await warn.call('ping');
    assert.equal(logger.warnings.filter((w) => w.includes('using it anyway')).length, 1);
    await assert.rejects(exclude.call('ping'), soa.NoInstanceAvailable);
    assert.equal(logger.warnings.filter((w) => w.includes('excluding it')).length, 1);
    await same.call('ping');
    assert.throws(() => client([theirs], { idlMismatch: 'ignore' }), soa.ConfigError);
  } finally {
    for (const x of [warn, exclude, same]) await x.close();
    await server.close();
  }
});

test('the idl hash is read from the soa_idl.js next to the generated code', () => {
  const file = path.join(Echo.dir, 'soa_idl.js');
  fs.writeFileSync(file, "module.exports = { service: 'echo', idlHash: 'sha256:0123456789abcdef' };\n");
  try {
    assert.equal(client([]).idl.mine, 'sha256:0123456789abcdef');
    assert.equal(client([], { idlHash: 'sha256:ffffffffffffffff' }).idl.mine, 'sha256:ffffffffffffffff');
  } finally {
    fs.unlinkSync(file);
  }
});

test('bad options are one ConfigError', () => {
  assert.throws(() => client([], { balancer: 'fastest' }), (e) => e instanceof soa.ConfigError && /unknown balancer/.test(e.message));
  assert.throws(() => client([], { timeout: -1 }), /timeout: expected a positive number/);
  assert.throws(() => new soa.Client({ instances: [] }, {}), soa.ConfigError);
  assert.throws(() => new soa.Registry({ etcd: { endpoints: [] } }), soa.ConfigError);
  assert.throws(() => new soa.Registry({ etcd: { user: 'u' } }), /user and password go together/);
  assert.throws(() => new soa.Registry({ etcd: { tls: { ca: '/nonexistent/ca.pem' } } }), /etcd.tls.ca: cannot read/);
});

test('a mass removal is held until probes fail; ejected instances come back through a probe', async () => {
  const a = await h.plainServer();
  const b = await h.plainServer();
  const source = new EventEmitter();
  source.instances = [a.instance, b.instance];
  const logger = h.quiet();
  const c = new soa.Client(source, Echo, { service: 'echo', logger, probeInterval: 20 });
  try {
    source.instances = [];
    source.emit('change', []); // every instance gone at once: held
    assert.equal(await c.call('echo', 'still'), 'still');
    assert.ok(logger.warnings.some((w) => w.includes('removed 2 of 2')), logger.warnings.join('\n'));
    await a.close(); // a really is gone: its probe fails and it is dropped; b answers and stays
    const deadline = Date.now() + 3000;
    while (c.picker.instances.length !== 1) {
      assert.ok(Date.now() < deadline, 'a was never dropped');
      await new Promise((r) => { setTimeout(r, 20); });
    }
    assert.equal(c.picker.instances[0].port, b.port);
    for (let n = 0; n < 5; n += 1) assert.equal(await c.call('whoami'), b.port);
  } finally {
    await c.close();
    await b.close();
  }
});

test('calls are pipelined on a connection; a timed-out one does not fail the others', async () => {
  const server = await h.plainServer();
  const c = client([server.instance], { poolSize: 1, pipeline: 4, idempotent: [] });
  try {
    const echoes = Array.from({ length: 12 }, (_, i) => c.invoke('echo', [`e${i}`], { timeout: 3000 }));
    assert.deepEqual(await Promise.all(echoes), Array.from({ length: 12 }, (_, i) => `e${i}`));
    assert.equal(server.connections, 1);
    const slow = c.invoke('slow', [300], { timeout: 50 });
    const behind = c.invoke('echo', ['behind'], { timeout: 3000 }); // same connection, after slow
    await assert.rejects(slow, soa.DeadlineExceeded);
    assert.equal(await behind, 'behind');
    assert.equal(await c.call('echo', 'next'), 'next'); // the timed-out connection is not reused
    assert.equal(server.connections, 2);
  } finally {
    await c.close();
    await server.close();
  }
});

test('requests made in one tick leave in one write', async () => {
  const net = require('node:net'); // eslint-disable-line global-require
  const server = await h.theaderServer();
  const c = client([server.instance], { poolSize: 1, pipeline: 8 });
  const writes = { one: 0, many: 0 };
  const { _write: one, _writev: many } = net.Socket.prototype;
  try {
    assert.equal(await c.call('echo', 'warm'), 'warm'); // the connection is open
    const mine = (socket) => socket.remotePort === server.port; // the client's, not the server's
    net.Socket.prototype._write = function counted(...a) { if (mine(this)) writes.one += 1; return one.apply(this, a); };
    net.Socket.prototype._writev = function counted(...a) { if (mine(this)) writes.many += 1; return many.apply(this, a); };
    const echoes = await Promise.all(Array.from({ length: 6 }, (_, i) => c.call('echo', `e${i}`)));
    assert.deepEqual(echoes, ['e0', 'e1', 'e2', 'e3', 'e4', 'e5']);
    assert.deepEqual(writes, { one: 0, many: 1 }, 'six requests, one writev');
  } finally {
    net.Socket.prototype._write = one;
    net.Socket.prototype._writev = many;
    await c.close();
    await server.close();
  }
});
