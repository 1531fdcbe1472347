'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { once } = require('node:events');
const { Registry, address } = require('..');

/** etcd's v3 JSON gateway reduced to range and one watch stream fed by the test. */
function fakeEtcd(kvs) {
  const enc = (s) => Buffer.from(s).toString('base64');
  const watchers = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const data = JSON.parse(body);
      if (req.url === '/v3/kv/range') {
        const prefix = Buffer.from(data.key, 'base64').toString();
        const items = Object.entries(kvs).filter(([k]) => k.startsWith(prefix))
          .map(([k, v]) => ({ key: enc(k), value: enc(v), mod_revision: '1' }));
        res.end(JSON.stringify({ header: { revision: '1' }, kvs: items }));
      } else if (req.url === '/v3/watch') {
        res.write(`${JSON.stringify({ result: { header: { revision: '1' }, created: true } })}\n`);
        watchers.push(res);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
  });
  const compact = () => {
    for (const w of watchers.splice(0)) w.end(`${JSON.stringify({ result: { header: {}, canceled: true, compact_revision: '5' } })}\n`);
  };
  const send = (events) => {
    const msg = { result: { header: { revision: '2' }, events: events.map(([type, k, v]) => ({
      ...(type === 'DELETE' ? { type } : {}), kv: { key: enc(k), value: v === undefined ? undefined : enc(v), mod_revision: '2' },
    })) } };
    // split a message across writes: the reader must join them
    const text = `${JSON.stringify(msg)}\n`;
    for (const w of watchers) {
      w.write(text.slice(0, 10));
      w.write(text.slice(10));
    }
  };
  return { server, send, compact, watchers };
}

async function deadEndpoint() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return `127.0.0.1:${port}`;
}

const value = (host, port, extra = '') => `{"service":"catalog","host":"${host}","port":${port}${extra}}`;
const key = (host, port) => `/t/services/catalog/${host}:${port}`;
const hosts = (set) => set.map(address).join(' ');

async function until(resolver, want) {
  const deadline = Date.now() + 5000;
  while (hosts(resolver.instances) !== want) {
    if (Date.now() > deadline) assert.fail(`instances ${hosts(resolver.instances)}, want ${want}`);
    await Promise.race([once(resolver, 'change'), new Promise((r) => setTimeout(r, 200))]);
  }
}

test('resolve fails over between endpoints, skips invalid values once, and follows the watch', async () => {
  const kvs = {
    [key('10.0.0.1', 1)]: value('10.0.0.1', 1),
    [key('10.0.0.2', 2)]: value('10.0.0.2', 2, ',"protocol":"compact"'),
    [key('10.0.0.3', 3)]: '{"service":"catalog","host":"10.0.0.3","port":"3"}',
  };
  const fake = fakeEtcd(kvs);
  fake.server.listen(0, '127.0.0.1');
  await once(fake.server, 'listening');
  const warnings = [];
  const registry = new Registry({
    endpoints: [await deadEndpoint(), `http://127.0.0.1:${fake.server.address().port}`],
    prefix: '/t',
    logger: { warn: (m) => warnings.push(m) },
  });
  try {
    assert.equal(hosts(await registry.list('catalog')), '10.0.0.1:1 10.0.0.2:2');
    const resolver = await registry.resolve('catalog');
    try {
      assert.equal(hosts(resolver.instances), '10.0.0.1:1 10.0.0.2:2');
      assert.equal(resolver.instances[1].protocol, 'compact');
      assert.ok(warnings.some((w) => w.includes('bad_type')), warnings.join('\n'));
      const before = warnings.length;
      while (fake.watchers.length === 0) await new Promise((r) => setTimeout(r, 10));

      fake.send([['PUT', key('10.0.0.4', 4), value('10.0.0.4', 4)]]);
      await until(resolver, '10.0.0.1:1 10.0.0.2:2 10.0.0.4:4');
      fake.send([['DELETE', key('10.0.0.1', 1)]]);
      await until(resolver, '10.0.0.2:2 10.0.0.4:4');
      fake.send([['PUT', key('10.0.0.2', 2), value('10.0.0.2', 2, ',"leaving":true')]]);
      await until(resolver, '10.0.0.4:4');
      fake.send([['PUT', key('10.0.0.4', 4), 'not json'], ['PUT', key('10.0.0.5', 5), value('10.0.0.5', 5)]]);
      await until(resolver, '10.0.0.5:5');
      assert.equal(warnings.length, before + 1);

      // a change the watch missed is found by the list after a compaction
      for (const k of Object.keys(kvs)) delete kvs[k];
      kvs[key('10.0.0.6', 6)] = value('10.0.0.6', 6);
      fake.compact();
      await until(resolver, '10.0.0.6:6');
    } finally {
      await resolver.close();
    }
  } finally {
    for (const w of fake.watchers) w.destroy();
    fake.server.close();
  }
});

test('resolve rejects when no endpoint answers', async () => {
  const registry = new Registry({ endpoints: [await deadEndpoint()], timeout: 1000 });
  await assert.rejects(registry.resolve('catalog'), /etcd unreachable/);
});
