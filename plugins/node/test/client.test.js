'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { once } = require('node:events');
const { Client, NoInstanceAvailable, CallTimeout } = require('..');

async function listening(onSocket = (s) => s.destroy()) {
  const server = net.createServer(onSocket).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Stands in for a generated service client. */
class Dummy {}

const inst = (port) => ({ service: 's', host: '127.0.0.1', port, weight: 100, protocol: 'binary', transport: 'buffered' });

async function deadPort() {
  const s = await listening();
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('a refused connection fails over to the next instance; fn runs once', async () => {
  const server = await listening();
  const alive = inst(server.address().port);
  const dead = inst(await deadPort());
  const refused = [];
  const client = new Client({ instances: [dead, alive] }, Dummy, { onConnectError: (i) => refused.push(i.port) });
  try {
    for (let n = 0; n < 4; n += 1) {
      let runs = 0;
      assert.equal(await client.call(() => { runs += 1; return 'ok'; }), 'ok');
      assert.equal(runs, 1);
      assert.equal(client.lastInstance.port, alive.port);
    }
    assert.deepEqual(refused, [dead.port], 'ejected after refusing, the dead instance is tried once');
    client.ejected.set(`127.0.0.1:${alive.port}`, Date.now() + 60000);
    assert.equal(await client.call(() => 'alone'), 'alone', 'an ejected instance is tried when alone');
    assert.ok(!client.ejected.has(`127.0.0.1:${alive.port}`));
  } finally {
    server.close();
  }
});

test('no instance: nothing runs', async () => {
  const client = new Client({ instances: [inst(await deadPort())] }, Dummy);
  await assert.rejects(client.call(() => assert.fail('ran')), (e) => e instanceof NoInstanceAvailable && e.tried.length === 1);
  await assert.rejects(new Client({ instances: [] }, Dummy).call(() => 1), NoInstanceAvailable);
});

test('a call that does not answer times out', async () => {
  const sockets = [];
  const server = await listening((s) => sockets.push(s)); // accepts, never answers
  const client = new Client({ instances: [inst(server.address().port)] }, Dummy, { callTimeout: 200 });
  try {
    await assert.rejects(client.call(() => new Promise(() => {})), CallTimeout);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
});
