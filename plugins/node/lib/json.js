'use strict';
/**
 * A strict JSON reader that keeps each number's literal text, so that `9090.0` (a float, like
 * Python's json module reads it) can be told from `9090` (an integer): JSON.parse cannot.
 * Objects are plain objects, numbers are JsonNumber. Throws SyntaxError on anything not JSON.
 */

class JsonNumber {
  constructor(text) {
    this.text = text;
    this.value = Number(text);
  }

  /** Written without a fraction or exponent. */
  get isInteger() {
    return /^-?\d+$/.test(this.text);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

function parse(text) {
  let pos = 0;

  function fail(what) {
    throw new SyntaxError(`${what} at offset ${pos}`);
  }

  function skip() {
    WS.lastIndex = pos;
    WS.exec(text);
    pos = WS.lastIndex;
  }

  function string() {
    const start = pos;
    pos += 1; // the opening quote
    for (;;) {
      const c = text.charCodeAt(pos);
      if (Number.isNaN(c)) fail('unterminated string');
      if (c === 0x22) break;
      if (c < 0x20) fail('control character in string');
      pos += c === 0x5c ? 2 : 1;
    }
    pos += 1;
    return JSON.parse(text.slice(start, pos)); // escapes, strictly
  }

  function value() {
    skip();
    const c = text[pos];
    if (c === '{') {
      pos += 1;
      const out = {};
      skip();
      if (text[pos] === '}') {
        pos += 1;
        return out;
      }
      for (;;) {
        skip();
        if (text[pos] !== '"') fail('expected a member name');
        const name = string();
        skip();
        if (text[pos] !== ':') fail("expected ':'");
        pos += 1;
        Object.defineProperty(out, name, { value: value(), enumerable: true, writable: true, configurable: true });
        skip();
        if (text[pos] === ',') {
          pos += 1;
        } else if (text[pos] === '}') {
          pos += 1;
          return out;
        } else {
          fail("expected ',' or '}'");
        }
      }
    }
    if (c === '[') {
      pos += 1;
      const out = [];
      skip();
      if (text[pos] === ']') {
        pos += 1;
        return out;
      }
      for (;;) {
        out.push(value());
        skip();
        if (text[pos] === ',') {
          pos += 1;
        } else if (text[pos] === ']') {
          pos += 1;
          return out;
        } else {
          fail("expected ',' or ']'");
        }
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) fail('unexpected character');
    pos = NUMBER.lastIndex;
    return new JsonNumber(m[0]);
  }

  const out = value();
  skip();
  if (pos !== text.length) fail('data after the JSON value');
  return out;
}

module.exports = { parse, JsonNumber };
