'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Balancer } = require('..');

const inst = (host, weight) => ({ service: 's', host, port: 1, weight });
const picks = (b, set, n, skip) => Array.from({ length: n }, () => (b.pick(set, skip) || { host: '-' }).host).join('');

test('smooth weighted round robin interleaves by weight', () => {
  assert.equal(picks(new Balancer(), [inst('a', 5), inst('b', 1), inst('c', 1)], 7), 'aabacaa');
  assert.equal(picks(new Balancer(), [inst('a', 100), inst('b', 100)], 6), 'ababab');
});

test('weight 0 is never picked; an empty set gives null', () => {
  const b = new Balancer();
  assert.equal(picks(b, [inst('a', 0), inst('b', 3)], 4), 'bbbb');
  assert.equal(b.pick([inst('a', 0)]), null);
  assert.equal(b.pick([]), null);
});

test('skipped addresses are left out', () => {
  const set = [inst('a', 1), inst('b', 1)];
  assert.equal(picks(new Balancer(), set, 3, new Set(['a:1'])), 'bbb');
  assert.equal(new Balancer().pick(set, new Set(['a:1', 'b:1'])), null);
});
