'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { balancers, address } = require('..');

const inst = (host, weight = 100, port = 1) => ({ service: 's', host, port, weight });
const run = (picker, n, key) => Array.from({ length: n }, () => (picker.pick(key) || { host: '-' }).host).join('');
const count = (picker, n) => {
  const out = {};
  for (let i = 0; i < n; i += 1) { const h = picker.pick().host; out[h] = (out[h] || 0) + 1; }
  return out;
};

test('round robin: each in turn, in key order, weights ignored but 0 left out', () => {
  const p = new balancers.RoundRobin().picker([inst('a', 5), inst('b', 1), inst('c', 0), inst('d', 1)], { start: 0 });
  assert.equal(run(p, 6), 'abdabd');
  assert.deepEqual(count(new balancers.RoundRobin().picker([inst('a'), inst('b'), inst('c')]), 30), { a: 10, b: 10, c: 10 });
});

test('smooth weighted round robin interleaves by weight, as nginx', () => {
  const wrr = new balancers.WeightedRoundRobin();
  assert.equal(run(wrr.picker([inst('a', 5), inst('b', 1), inst('c', 1)], { start: 0 }), 7), 'aabacaa');
  assert.equal(run(wrr.picker([inst('a', 100), inst('b', 100)], { start: 0 }), 6), 'ababab');
  assert.equal(run(wrr.picker([inst('a', 0), inst('b', 3)], { start: 0 }), 3), 'bbb');
  assert.deepEqual(balancers.smoothSequence([200, 100]), [0, 1, 0]);
});

test('weighted random follows the weights', () => {
  const c = count(new balancers.WeightedRandom().picker([inst('a', 100), inst('b', 300), inst('z', 0)]), 8000);
  assert.equal(c.z, undefined);
  assert.ok(c.b > 5600 && c.b < 6400, JSON.stringify(c));
});

test('least in-flight takes the less loaded of two', () => {
  const inflight = new Map([['a:1', 5], ['b:1', 0], ['c:1', 5]]);
  const p = new balancers.LeastInflight(inflight).picker([inst('a'), inst('b'), inst('c')]);
  const c = count(p, 3000);
  // b wins every draw it is in (2 of 3 pairs), a and c split the rest
  assert.ok(c.b > 1850 && c.b < 2150, JSON.stringify(c));
  assert.equal(new balancers.LeastInflight().picker([inst('a')]).pick().host, 'a');
});

test('no usable instance: every balancer picks null', () => {
  for (const [name, Balancer] of Object.entries(balancers.BALANCERS)) {
    assert.equal(new Balancer().picker([]).pick('k'), null, name);
    assert.equal(new Balancer().picker([inst('a', 0)]).pick('k'), null, name);
  }
  assert.throws(() => balancers.byName('fastest'), /unknown balancer "fastest"/);
});

const HASH = path.join(__dirname, '..', '..', '..', 'registry', 'vectors', 'hash');
const hashFiles = fs.readdirSync(HASH).filter((f) => f.endsWith('.json')).sort();

test('the hash vectors are there', () => assert.ok(hashFiles.length >= 5, hashFiles.join(' ')));

for (const file of hashFiles) {
  const v = JSON.parse(fs.readFileSync(path.join(HASH, file), 'utf8'));
  test(`hash vector ${file}: ${v.description}`, () => {
    const set = v.instances.map((i) => ({ service: 's', weight: 100, ...i }));
    const picker = new balancers.ConsistentHash().picker(set);
    for (const [key, want] of Object.entries(v.keys)) assert.equal(address(picker.pick(key)), want, `key ${key}`);
  });
}

test('consistent hash: a call without a key goes anywhere; numbers hash as decimal text', () => {
  const picker = new balancers.ConsistentHash().picker([inst('a'), inst('b')]);
  assert.ok(['a', 'b'].includes(picker.pick(undefined).host));
  assert.equal(picker.pick(42), picker.pick('42'));
  assert.equal(balancers.hash64('').toString(16), 'd41d8cd98f00b204');
});
