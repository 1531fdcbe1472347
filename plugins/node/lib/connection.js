'use strict';
/**
 * One connection to one instance, carrying calls in the instance's format: plain
 * Thrift (its `protocol`, `buffered` or `framed`), or THeader frames for instances with
 * `theader: true`, with per-call info headers (SCHEMA.md "Call metadata"). TLS when the
 * instance says `tls: true`.
 *
 * Calls go through the Apache-generated client's `send_<method>` / `recv_<method>`, so replies
 * are decoded by the generated code and IDL exceptions come back as their own classes.
 * Several calls may be in flight on one connection (pipelined, as Apache's own Node client does;
 * the requests made in one tick are corked and leave in one write);
 * replies are matched to calls by sequence id. A connection that saw a transport error or a
 * malformed reply is `broken`: every call in flight on it fails (TransportError, sent; not sent
 * when it was a TLS alert: the server refused the session) and it is never used again. One whose call timed out is `draining`: it takes no new calls, the late
 * reply is read and dropped, and it closes once its other calls are done.
 */

const net = require('node:net');
const tls = require('node:tls');
const { performance } = require('node:perf_hooks');
const thrift = require('thrift');
const theader = require('./theader');
const { address } = require('./instance');
const {
  ConnectError, TransportError, WrongTarget, DeadlineExceeded, oneLine, tlsRefused,
} = require('./errors');

const PROTOCOLS = { binary: thrift.TBinaryProtocol, compact: thrift.TCompactProtocol };
const PROTOCOL_BY_ID = { 0: thrift.TBinaryProtocol, 2: thrift.TCompactProtocol };
const MAX_FRAME = 64 * 1024 * 1024;

/** Where the generated client writes a request: collects it, and hands it over on flush. */
class Output {
  constructor(onFlush) {
    this.parts = [];
    this.seqid = 0;
    this.onFlush = onFlush;
  }

  write(buf) { this.parts.push(typeof buf === 'string' ? Buffer.from(buf, 'utf8') : buf); }

  setCurrSeqId(seqid) { this.seqid = seqid; }

  flush() {
    const payload = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    this.onFlush(payload, this.seqid);
  }
}

const clientClass = (generated) => (typeof generated === 'function' ? generated : generated && generated.Client);

class Connection {
  /**
   * Connects to `instance`; resolves to a Connection, or rejects with ConnectError (nothing was
   * sent). Options: `timeout` (ms), `tls` (tls.connect options, for instances with tls: true),
   * `ServiceClient` (the generated module or its Client class).
   */
  static open(instance, { timeout, tls: tlsOptions = {}, ServiceClient }) {
    const addr = address(instance);
    return new Promise((resolve, reject) => {
      const socket = instance.tls
        ? tls.connect({ host: instance.host, port: instance.port, servername: net.isIP(instance.host) ? undefined : instance.host, ...tlsOptions })
        : net.connect({ host: instance.host, port: instance.port });
      const fail = (error) => {
        clearTimeout(timer);
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
        reject(new ConnectError(addr, error));
      };
      const timer = setTimeout(() => fail(new Error(`timed out after ${timeout} ms`)), timeout);
      socket.once('error', fail);
      socket.once('close', () => fail(new Error('closed while connecting')));
      socket.once(instance.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners();
        resolve(new Connection(socket, instance, ServiceClient));
      });
    });
  }

  constructor(socket, instance, ServiceClient) {
    this.socket = socket;
    this.instance = instance;
    this.address = address(instance);
    this.format = instance.theader ? 'theader' : instance.transport;
    this.Protocol = PROTOCOLS[instance.protocol];
    this.client = new (clientClass(ServiceClient))(new Output((payload, seqid) => this.write(payload, seqid)), this.Protocol);
    this.broken = false;
    this.draining = false;
    this.inflight = new Map(); // seqid -> call
    this.writing = null; // the call whose request is being written
    this.reserved = 0; // slots the pool handed out for calls about to start
    this.inbox = [];
    this.pairs = null; // call headers encoded for THeader (theader.encodePairs), and their object
    this.pairsOf = undefined;
    this.calls = 0;
    this.idleSince = performance.now();
    this.onIdle = null; // set by the pool: called when the last call in flight ends
    this.corked = false; // requests written in this tick go out together, in one write
    this.uncork = () => {
      this.corked = false;
      this.socket.uncork();
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('closed by the server')));
  }

  /** Whether it can take another call. */
  get usable() {
    return !this.broken && !this.draining;
  }

  /**
   * Sends `method(...args)` and resolves to its result. `headers` (THeader info keys; ignored on
   * plain connections) are written with the frame, with `deadline` (performance.now() ms) as
   * `soa-deadline-ms`; the answer is awaited until `wait` (the deadline, plus a grace on THeader
   * connections so that the server's own `late` refusal can arrive). Rejects with the IDL's
   * exceptions or a TApplicationException (answers), DeadlineExceeded, WrongTarget or
   * TransportError.
   */
  call(method, args, headers, wait, deadline = wait) {
    if (this.reserved > 0) this.reserved -= 1;
    const send = this.client[`send_${method}`];
    if (typeof send !== 'function') return Promise.reject(new TypeError(`soa: the generated client has no method ${method}`));
    if (!this.usable) return Promise.reject(new TransportError(`soa: connection to ${this.address} is closed`, { address: this.address, sent: false }));
    this.calls += 1;
    return new Promise((resolve, reject) => {
      this.client._seqid = (this.client._seqid + 1) | 0;
      const seqid = this.client._seqid;
      const call = {
        resolve, reject, method, headers, deadline, seqid, sent: false, oneway: typeof this.client[`recv_${method}`] !== 'function',
      };
      this.writing = call;
      try {
        send.apply(this.client, args);
      } catch (e) { // bad arguments: the generated code could not write them; nothing was sent
        this.writing = null;
        this.client.output.parts = [];
        reject(e);
        return;
      }
      this.writing = null;
      if (call.oneway) {
        resolve(undefined);
        if (this.onIdle) this.onIdle(this);
        return;
      }
      call.timer = setTimeout(() => this.expire(call), Math.max(0, wait - performance.now()));
      this.inflight.set(seqid, call);
    });
  }

  write(payload, seqid) {
    const call = this.writing;
    let frame = payload;
    if (this.format === 'theader') {
      if (call.headers !== this.pairsOf) { // the same object call after call: encoded once
        this.pairs = theader.encodePairs(call.headers || {});
        this.pairsOf = call.headers;
      }
      const ms = Math.max(1, Math.floor(call.deadline - performance.now()));
      frame = theader.frame(this.instance.protocol, seqid, this.pairs, ms, payload);
    } else if (this.format === 'framed') {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(payload.length, 0);
      frame = Buffer.concat([len, payload]);
    }
    call.sent = true;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(frame);
  }

  /** A call's deadline passed: it fails, and the connection takes no new calls. */
  expire(call) {
    if (this.inflight.get(call.seqid) !== call) return;
    call.reject(new DeadlineExceeded(`soa: ${call.method} on ${this.address}: no answer within the deadline`, { address: this.address, sent: true }));
    call.resolve = null; // its reply, if it comes, is read and dropped
    this.draining = true;
    this.ended(call, false);
  }

  onData(chunk) {
    this.inbox.push(chunk);
    try {
      this.parse();
    } catch (e) {
      this.fail(new TransportError(`soa: bad reply from ${this.address}: ${oneLine(e)}`, { address: this.address, sent: true, cause: e }));
    }
  }

  parse() {
    let buf = this.inbox.length === 1 ? this.inbox[0] : Buffer.concat(this.inbox);
    this.inbox = [];
    while (buf.length && !this.broken) {
      if (this.format === 'buffered') {
        const input = new thrift.TFramedTransport(buf);
        if (!this.dispatch(new this.Protocol(input), null)) break;
        buf = buf.subarray(input.readPos);
        continue;
      }
      if (buf.length < 4) break;
      const length = buf.readUInt32BE(0);
      if (length > MAX_FRAME) throw new Error(`frame of ${length} bytes`);
      if (buf.length < 4 + length) break;
      const frame = buf.subarray(4, 4 + length);
      buf = buf.subarray(4 + length);
      if (this.format === 'framed') {
        if (!this.dispatch(new this.Protocol(new thrift.TFramedTransport(frame)), null)) throw new Error('truncated message in frame');
        continue;
      }
      const { seqid, protocolId, headers, payload } = theader.decode(frame);
      const call = this.inflight.get(seqid);
      const error = headers['soa-error'];
      if (error === 'late' || error === 'wrong-target') {
        if (!call) throw new Error(`a reply to no call (seqid ${seqid})`);
        this.finish(call, error === 'late'
          ? new DeadlineExceeded(`soa: ${call.method}: ${this.address} refused it: the deadline had passed on arrival`, { address: this.address, sent: false, late: true })
          : new WrongTarget(this.address));
      } else if (!this.dispatch(new PROTOCOL_BY_ID[protocolId](new thrift.TFramedTransport(payload)), seqid)) {
        throw new Error('truncated message in frame');
      }
    }
    if (buf.length && !this.broken) this.inbox = [buf];
  }

  /**
   * Decodes one reply message from `input` and settles its call; false when the bytes hold only
   * part of it. A reply to a call that timed out is read and dropped.
   */
  dispatch(input, frameSeqid) {
    let outcome = null;
    let call;
    try {
      const { fname, mtype, rseqid } = input.readMessageBegin();
      call = this.inflight.get(frameSeqid === null ? rseqid : frameSeqid);
      if (!call) throw new Error(`a reply to no call (seqid ${rseqid})`);
      if (fname !== call.method) throw new Error(`reply to ${fname}, expected ${call.method}`);
      this.client._reqs[0] = (err, result) => { outcome = { err, result }; };
      this.client[`recv_${fname}`](input, mtype, 0);
    } catch (e) {
      delete this.client._reqs[0];
      if (e instanceof thrift.InputBufferUnderrunError) return false;
      throw e;
    }
    if (outcome === null) throw new Error('the generated client did not answer');
    let { err } = outcome;
    if (typeof err === 'string') err = new thrift.Thrift.TApplicationException(thrift.Thrift.TApplicationExceptionType.MISSING_RESULT, err);
    if (err) this.finish(call, err); else this.finish(call, null, outcome.result);
    return true;
  }

  finish(call, err, result) {
    if (call.resolve) { // not timed out
      if (err) call.reject(err); else call.resolve(result);
    }
    this.ended(call, true);
  }

  ended(call, answered) {
    clearTimeout(call.timer);
    if (answered || !this.draining) this.inflight.delete(call.seqid);
    else call.timer = null; // expired: kept until its reply comes, so the reply can be matched
    if (this.inflight.size === 0 || (this.draining && [...this.inflight.values()].every((c) => !c.resolve))) {
      this.idleSince = performance.now();
      if (this.draining && this.reserved === 0) this.close();
    }
    if (this.onIdle) this.onIdle(this);
  }

  /** The connection broke: every call in flight fails, and it is never used again. */
  fail(cause) {
    if (this.broken) return;
    this.broken = true;
    this.socket.destroy();
    const calls = [...this.inflight.values()];
    this.inflight.clear();
    for (const call of calls) {
      clearTimeout(call.timer);
      if (call.resolve) {
        let error = cause;
        if (tlsRefused(cause)) { // TLS 1.3: the server's verdict on our certificate comes after our request
          error = new TransportError(`soa: ${this.address} refused the TLS session: ${oneLine(cause)}`, { address: this.address, sent: false, cause });
        } else if (!(cause instanceof TransportError)) {
          error = new TransportError(`soa: connection to ${this.address} broke: ${oneLine(cause)}`, { address: this.address, sent: call.sent, cause });
        }
        call.reject(error);
      }
    }
    if (this.onIdle) this.onIdle(this);
  }

  close() {
    if (this.broken) return;
    this.fail(new TransportError(`soa: connection to ${this.address} closed`, { address: this.address, sent: true }));
  }
}

module.exports = { Connection, clientClass };
