'use strict';
/**
 * One connection to one instance, carrying one call at a time, in the instance's format: plain
 * Thrift (its `protocol`, `buffered` or `framed`), or THeader frames for instances with
 * `theader: true`, with per-call info headers (SCHEMA.md "Call metadata"). TLS when the
 * instance says `tls: true`.
 *
 * Calls go through the Apache-generated client's `send_<method>` / `recv_<method>`, so replies
 * are decoded by the generated code and IDL exceptions come back as their own classes.
 * A connection that saw any transport error, a timeout or a malformed reply is `broken` and is
 * never used again (the pool drops it).
 */

const net = require('node:net');
const tls = require('node:tls');
const { performance } = require('node:perf_hooks');
const thrift = require('thrift');
const theader = require('./theader');
const { address } = require('./instance');
const {
  ConnectError, TransportError, WrongTarget, DeadlineExceeded, oneLine,
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
    this.pending = null; // the call in flight: {resolve, reject, timer, method, headers, deadline}
    this.inbox = [];
    this.inboxBytes = 0;
    this.calls = 0;
    this.idleSince = performance.now();
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('closed by the server')));
  }

  /**
   * Sends `method(...args)` and resolves to its result. `headers` (THeader info keys; ignored on
   * plain connections) are written with the frame, with `deadline` (performance.now() ms) as
   * `soa-deadline-ms`; the answer is awaited until `wait` (the deadline, plus a grace on THeader
   * connections so that the server's own `late` refusal can arrive). Rejects with the IDL's exceptions or a
   * TApplicationException (answers), DeadlineExceeded, WrongTarget or TransportError.
   */
  call(method, args, headers, wait, deadline = wait) {
    if (this.broken || this.pending) throw new Error('soa: internal: connection not idle');
    const send = this.client[`send_${method}`];
    if (typeof send !== 'function') return Promise.reject(new TypeError(`soa: the generated client has no method ${method}`));
    this.calls += 1;
    return new Promise((resolve, reject) => {
      const left = wait - performance.now();
      const call = { resolve, reject, method, headers, deadline, oneway: typeof this.client[`recv_${method}`] !== 'function', sent: false };
      call.timer = setTimeout(() => {
        this.kill(new DeadlineExceeded(`soa: ${method} on ${this.address}: no answer within the deadline`, { address: this.address, sent: call.sent }));
      }, Math.max(0, left));
      this.pending = call;
      this.client._seqid = (this.client._seqid + 1) | 0;
      try {
        send.apply(this.client, args);
      } catch (e) { // bad arguments: the generated code could not write them; nothing was sent
        clearTimeout(call.timer);
        this.pending = null;
        this.client.output.parts = [];
        if (call.sent) this.kill(e);
        reject(e);
        return;
      }
      if (call.oneway && this.pending === call) this.settle(null, undefined);
    });
  }

  write(payload, seqid) {
    const call = this.pending;
    let frame = payload;
    if (this.format === 'theader') {
      const headers = { ...call.headers, 'soa-deadline-ms': String(Math.max(1, Math.floor(call.deadline - performance.now()))) };
      frame = theader.encode(this.instance.protocol, seqid, headers, payload);
    } else if (this.format === 'framed') {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(payload.length, 0);
      frame = Buffer.concat([len, payload]);
    }
    call.sent = true;
    this.socket.write(frame);
  }

  onData(chunk) {
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    if (!this.pending) {
      this.fail(new Error('data with no call in flight'));
      return;
    }
    try {
      this.parse();
    } catch (e) {
      this.kill(new TransportError(`soa: bad reply from ${this.address}: ${oneLine(e)}`, { address: this.address, sent: true, cause: e }));
    }
  }

  parse() {
    const buf = this.inbox.length === 1 ? this.inbox[0] : Buffer.concat(this.inbox);
    this.inbox = [buf];
    if (this.format === 'buffered') {
      const done = this.dispatch(buf, this.Protocol, {});
      if (done) this.consume(buf.length);
      return;
    }
    if (buf.length < 4) return;
    const length = buf.readUInt32BE(0);
    if (length > MAX_FRAME) throw new Error(`frame of ${length} bytes`);
    if (buf.length < 4 + length) return;
    if (buf.length > 4 + length) throw new Error('more than one reply');
    const frame = buf.subarray(4, 4 + length);
    if (this.format === 'framed') {
      if (!this.dispatch(frame, this.Protocol, {})) throw new Error('truncated message in frame');
    } else {
      const { protocolId, headers, payload } = theader.decode(frame);
      const error = headers['soa-error'];
      if (error === 'late') {
        this.settle(new DeadlineExceeded(`soa: ${this.pending.method}: ${this.address} refused it: the deadline had passed on arrival`, { address: this.address, sent: false, late: true }));
      } else if (error === 'wrong-target') {
        this.settle(new WrongTarget(this.address));
      } else if (!this.dispatch(payload, PROTOCOL_BY_ID[protocolId], headers)) {
        throw new Error('truncated message in frame');
      }
    }
    this.consume(buf.length);
  }

  consume() {
    this.inbox = [];
    this.inboxBytes = 0;
  }

  /** Decodes one reply message from `buf`; false when `buf` holds only part of it. */
  dispatch(buf, Protocol) {
    const input = new Protocol(new thrift.TFramedTransport(buf));
    const call = this.pending;
    let outcome = null;
    try {
      const { fname, mtype } = input.readMessageBegin();
      if (fname !== call.method) throw new Error(`reply to ${fname}, expected ${call.method}`);
      const recv = this.client[`recv_${fname}`];
      this.client._reqs[0] = (err, result) => { outcome = { err, result }; };
      recv.call(this.client, input, mtype, 0);
    } catch (e) {
      delete this.client._reqs[0];
      if (e instanceof thrift.InputBufferUnderrunError) return false;
      throw e;
    }
    if (outcome === null) throw new Error('the generated client did not answer');
    let { err } = outcome;
    if (typeof err === 'string') err = new thrift.Thrift.TApplicationException(thrift.Thrift.TApplicationExceptionType.MISSING_RESULT, err);
    this.settle(err || null, outcome.result);
    return true;
  }

  settle(err, result) {
    const call = this.pending;
    if (!call) return;
    this.pending = null;
    clearTimeout(call.timer);
    this.idleSince = performance.now();
    if (err) call.reject(err); else call.resolve(result);
  }

  /** The connection broke: reject the call in flight (if any) and never use it again. */
  fail(cause) {
    const call = this.pending;
    const error = cause instanceof Error && (cause.name === 'TransportError' || cause.name === 'DeadlineExceeded')
      ? cause
      : new TransportError(`soa: connection to ${this.address} broke: ${oneLine(cause)}`, { address: this.address, sent: call ? call.sent : false, cause });
    this.kill(error);
  }

  kill(error) {
    const call = this.pending;
    this.broken = true;
    this.socket.destroy();
    if (call) {
      this.pending = null;
      clearTimeout(call.timer);
      call.reject(error);
    }
  }

  close() {
    this.broken = true;
    this.socket.destroy();
  }
}

module.exports = { Connection, clientClass };
