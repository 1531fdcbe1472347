'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { parseInstance, InvalidInstance } = require('..');

const DIR = path.join(__dirname, '..', '..', '..', 'registry', 'vectors');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

test('the vectors are there', () => {
  assert.ok(files.length >= 20, `only ${files.length} vectors in ${DIR}`);
});

for (const file of files) {
  const v = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
  const raw = v.value_base64 !== undefined ? Buffer.from(v.value_base64, 'base64') : Buffer.from(v.value, 'utf8');
  test(`vector ${file}: ${v.description}`, () => {
    if (v.valid) {
      assert.deepStrictEqual({ ...parseInstance(raw, v.key, v.prefix) }, v.expect);
    } else {
      assert.throws(() => parseInstance(raw, v.key, v.prefix), (e) => {
        assert.ok(e instanceof InvalidInstance, e);
        assert.equal(e.code, v.error, e.message);
        return true;
      });
    }
  });
}

test('leaving is read, and not a field of the instance', () => {
  const i = parseInstance('{"service":"a","host":"h","port":1,"leaving":true}', '/soa/services/a/h:1', '/soa');
  assert.equal(i.leaving, true);
  assert.ok(!Object.keys(i).includes('leaving'));
});

test('an integral float is not an integer, as in Python', () => {
  assert.throws(() => parseInstance('{"service":"a","host":"h","port":1.0}'), { code: 'bad_type' });
  assert.throws(() => parseInstance('{"service":"a","host":"h","port":1e3}'), { code: 'bad_type' });
});

test('the first faulty field wins', () => {
  assert.throws(() => parseInstance('{"service":"a","host":"h","port":"1","protocol":"x"}'), { code: 'bad_type' });
  assert.throws(() => parseInstance('{"service":"a","host":"h","port":1} x'), { code: 'not_json' });
  assert.throws(() => parseInstance('\ufeff{"service":"a","host":"h","port":1}'), { code: 'not_json' });
});
