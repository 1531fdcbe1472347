'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { theader } = require('..');

test('a request frame, byte for byte as SCHEMA.md lays it out', () => {
  const frame = theader.encode('compact', 7, { k: 'v' }, Buffer.from([0x82, 0x21]));
  const header = [2, 0, 1, 1, 1, 0x6b, 1, 0x76]; // protocol 2, no transforms, 1 key-value: "k" "v"
  const want = Buffer.from([0, 0, 0, 10 + 8 + 2, 0x0f, 0xff, 0, 0, 0, 0, 0, 7, 0, 2, ...header, 0x82, 0x21]);
  assert.deepEqual(frame, want);
});

test('decode reads what encode writes, with padding and utf-8', () => {
  const frame = theader.encode('binary', 0xfffffffe, { 'soa-deadline-ms': '250', 'soa-service': 'é' }, Buffer.from('xyz'));
  const got = theader.decode(frame.subarray(4));
  assert.equal(got.seqid, 0xfffffffe);
  assert.equal(got.protocolId, 0);
  assert.deepEqual(got.headers, { 'soa-deadline-ms': '250', 'soa-service': 'é' });
  assert.equal(got.payload.toString(), 'xyz');
  assert.equal((frame.length - 14 - 3) % 4, 0);
});

test('malformed frames are refused, never over-read', () => {
  const ok = theader.encode('binary', 1, { a: 'b' }, Buffer.alloc(0)).subarray(4);
  const bad = (mutate) => { const b = Buffer.from(ok); mutate(b); return () => theader.decode(b); };
  assert.throws(bad((b) => b.writeUInt16BE(0x1234, 0)), /magic/);
  assert.throws(bad((b) => b.writeUInt16BE(200, 8)), /header of 800 bytes/);
  assert.throws(bad((b) => { b[11] = 1; }), /transforms/);
  assert.throws(bad((b) => { b[12] = 9; }), /info block 9/);
  assert.throws(bad((b) => { b[13] = 100; }), /100 headers/);
  assert.throws(bad((b) => { b[14] = 50; }), /string of 50 bytes/);
  assert.throws(() => theader.decode(Buffer.alloc(3)), /frame of 3 bytes/);
});

test('frame with pairs encoded once and the deadline is encode with the deadline among the headers', () => {
  const fixed = { 'soa-service': 'echo', 'soa-instance': 'a1', 'soa-caller': 'tests' };
  const payload = Buffer.from('payload');
  for (const ms of [1, 250, 30000, 123456789]) {
    const got = theader.frame('binary', 9, theader.encodePairs(fixed), ms, payload);
    assert.deepEqual(got, theader.encode('binary', 9, { ...fixed, 'soa-deadline-ms': String(ms) }, payload));
    assert.deepEqual(theader.decode(got.subarray(4)).headers, { ...fixed, 'soa-deadline-ms': String(ms) });
  }
  assert.deepEqual(theader.frame('compact', 3, theader.encodePairs({}), 0, payload), theader.encode('compact', 3, {}, payload));
});
