'use strict';
/**
 * Apache Thrift's header format (THeader) as registry/SCHEMA.md "Call metadata" specifies it:
 * `length u32 | 0x0FFF u16 | flags u16 | seqid u32 | header_words u16 | header | payload`, the
 * header being a varint protocol id, a varint transform count (0), key-value info blocks and
 * zero padding. Written here rather than taken from the npm `thrift` package: its THeader
 * transport keeps one set of headers per connection and hides a reply's headers inside its
 * connection object, so a pooled call could not carry its own deadline nor read its own reply's
 * `soa-error` (see README.md).
 *
 * `encode` builds one request frame (`frame`, from pairs encoded once by `encodePairs`, is the
 * same with the call's deadline added); `decode` parses one complete frame (the bytes after the
 * length) and throws THeaderError on anything malformed, checking every count and length
 * against the bytes that remain before reading.
 */

const MAGIC = 0x0fff;
const PROTOCOL_IDS = { binary: 0, compact: 2 };
const INFO_KEYVALUE = 1;
const INFO_PADDING = 0;

class THeaderError extends Error {
  constructor(message) {
    super(`THeader: ${message}`);
    this.name = 'THeaderError';
  }
}

function varint(n, out) {
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

const DEADLINE = Buffer.from('soa-deadline-ms', 'utf8');

/** The wire form of `headers` (an object of string keys and values): `{bytes, count}`, for
 * `frame`. A connection encodes its fixed headers (the target, the caller) once. */
function encodePairs(headers) {
  const parts = [];
  let count = 0;
  for (const k of Object.keys(headers)) {
    for (const s of [k, headers[k]]) {
      const b = Buffer.from(String(s), 'utf8');
      const len = [];
      varint(b.length, len);
      parts.push(Buffer.from(len), b);
    }
    count += 1;
  }
  return { bytes: Buffer.concat(parts), count };
}

/** One request frame in one buffer: `payload` (one message in `protocol`, sequence id `seqid`)
 * with the encoded `pairs` and, when `deadlineMs` > 0, `soa-deadline-ms`. */
function frame(protocol, seqid, pairs, deadlineMs, payload) {
  const digits = deadlineMs > 0 ? String(deadlineMs) : '';
  const count = pairs.count + (digits ? 1 : 0);
  const info = [];
  if (count) {
    varint(INFO_KEYVALUE, info);
    varint(count, info);
  }
  const deadlineBytes = digits ? 2 + DEADLINE.length + digits.length : 0; // both lengths < 128
  const used = 2 + info.length + pairs.bytes.length + deadlineBytes;
  const headerLength = used + (-used & 3);
  const out = Buffer.allocUnsafe(14 + headerLength + payload.length);
  out.writeUInt32BE(10 + headerLength + payload.length, 0);
  out.writeUInt16BE(MAGIC, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt32BE(seqid >>> 0, 8);
  out.writeUInt16BE(headerLength / 4, 12);
  let pos = 14;
  out[pos++] = PROTOCOL_IDS[protocol]; // 0 or 2: one varint byte
  out[pos++] = 0; // no transforms
  for (const b of info) out[pos++] = b;
  if (count) {
    pos += pairs.bytes.copy(out, pos);
    if (digits) {
      out[pos++] = DEADLINE.length;
      pos += DEADLINE.copy(out, pos);
      out[pos++] = digits.length;
      pos += out.write(digits, pos, 'latin1');
    }
  }
  out.fill(0, pos, 14 + headerLength);
  payload.copy(out, 14 + headerLength);
  return out;
}

/** One request frame: `payload` (a Buffer holding one message in `protocol`) with `headers`
 * (an object of string keys and values), `seqid` the message's. */
function encode(protocol, seqid, headers, payload) {
  return frame(protocol, seqid, encodePairs(headers), 0, payload);
}

class Reader {
  constructor(buf, start, end) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  varint() {
    let out = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new THeaderError('truncated varint');
      const b = this.buf[this.pos++];
      out += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return out;
    }
    throw new THeaderError('varint too long');
  }

  string() {
    const n = this.varint();
    if (n > this.end - this.pos) throw new THeaderError(`string of ${n} bytes, ${this.end - this.pos} left`);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

/** Parses a frame's bytes after its length: `{seqid, protocolId, headers, payload}`. */
function decode(frame) {
  if (frame.length < 10) throw new THeaderError(`frame of ${frame.length} bytes`);
  if (frame.readUInt16BE(0) !== MAGIC) throw new THeaderError('no THeader magic');
  const seqid = frame.readUInt32BE(4);
  const headerBytes = frame.readUInt16BE(8) * 4;
  if (headerBytes > frame.length - 10) throw new THeaderError(`header of ${headerBytes} bytes, ${frame.length - 10} left`);
  const r = new Reader(frame, 10, 10 + headerBytes);
  const protocolId = r.varint();
  if (protocolId !== 0 && protocolId !== 2) throw new THeaderError(`protocol id ${protocolId}`);
  if (r.varint() !== 0) throw new THeaderError('transforms are not supported');
  const headers = {};
  while (r.pos < r.end) {
    const id = r.varint();
    if (id === INFO_PADDING) break;
    if (id !== INFO_KEYVALUE) throw new THeaderError(`info block ${id}`);
    const count = r.varint();
    if (count > r.end - r.pos) throw new THeaderError(`${count} headers in ${r.end - r.pos} bytes`);
    for (let i = 0; i < count; i += 1) {
      const key = r.string();
      headers[key] = r.string();
    }
  }
  return { seqid, protocolId, headers, payload: frame.subarray(10 + headerBytes) };
}

module.exports = {
  encode, encodePairs, frame, decode, THeaderError, PROTOCOL_IDS,
};
