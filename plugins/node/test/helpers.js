'use strict';
/**
 * What the plugin's own tests share: Apache-generated code for tests/fixtures/client_echo.thrift
 * (made once per run with the `thrift` compiler), Node Thrift servers of it (plain, or speaking
 * THeader like a soa server, recording the headers they get), and instance records.
 */

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { once } = require('node:events');
const { execFileSync } = require('node:child_process');
const thrift = require('thrift');
const { theader } = require('..');

const ROOT = path.join(__dirname, '..', '..', '..');
let generated = null;

/** The generated EchoService module (thrift -r --gen js:node, into a temp dir). */
function echoService() {
  if (generated) return generated;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'soa-node-gen-'));
  execFileSync('thrift', ['-r', '--gen', 'js:node', '-out', out, path.join(ROOT, 'tests', 'fixtures', 'client_echo.thrift')]);
  // the generated code requires 'thrift': let it find ours
  fs.symlinkSync(path.join(__dirname, '..', 'node_modules'), path.join(out, 'node_modules'));
  generated = require(path.join(out, 'EchoService')); // eslint-disable-line global-require, import/no-dynamic-require
  generated.dir = out;
  return generated;
}

/** A handler of EchoService on port `port` (set once listening). */
function handler(state) {
  const count = (m) => { state.calls[m] = (state.calls[m] || 0) + 1; };
  return {
    ping: () => { count('ping'); },
    echo: (msg) => { count('echo'); return msg; },
    whoami: () => { count('whoami'); return state.port; },
    slow: (ms) => new Promise((r) => { count('slow'); setTimeout(() => r(state.port), ms); }),
    bump: (key) => { count('bump'); return key ? state.calls.bump : 0; },
    deadline_ms: () => -1,
    crash: () => { throw new Error('boom'); },
  };
}

/** A plain Apache Thrift Node server of EchoService; `state.connections` counts accepts. */
async function plainServer({ transport = 'buffered', protocol = 'binary' } = {}) {
  const state = { calls: {}, connections: 0, port: 0, sockets: new Set() };
  const server = thrift.createServer(echoService(), handler(state), {
    transport: transport === 'framed' ? thrift.TFramedTransport : thrift.TBufferedTransport,
    protocol: protocol === 'compact' ? thrift.TCompactProtocol : thrift.TBinaryProtocol,
  });
  server.on('connection', (s) => { state.connections += 1; state.sockets.add(s); s.on('close', () => state.sockets.delete(s)); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = server.address().port;
  state.instance = inst(state.port, { transport, protocol });
  state.close = () => new Promise((r) => { for (const s of state.sockets) s.destroy(); server.close(r); });
  return state;
}

/** Collects what the processor writes for one reply. */
class Capture {
  constructor() { this.parts = []; }

  write(b) { this.parts.push(typeof b === 'string' ? Buffer.from(b) : b); }

  setCurrSeqId() {}

  flush() { this.done(Buffer.concat(this.parts)); }
}

/**
 * A THeader server like a soa server: decodes each frame, records its headers in
 * `state.headers`, refuses `soa-deadline-ms` <= 1 (`soa-error: late`) and a `soa-instance` other
 * than `id` (`wrong-target`) unexecuted, and otherwise runs the call.
 */
async function theaderServer({ id = 'inst-1' } = {}) {
  const state = { calls: {}, connections: 0, headers: [], port: 0, sockets: new Set() };
  const processor = new (echoService().Processor)(handler(state));
  const reply = (socket, seqid, headers, payload) => socket.write(theader.encode('binary', seqid, headers, payload));
  const server = net.createServer((socket) => {
    state.connections += 1;
    state.sockets.add(socket);
    socket.on('close', () => state.sockets.delete(socket));
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const frame = theader.decode(buf.subarray(4, 4 + buf.readUInt32BE(0)));
        buf = buf.subarray(4 + buf.readUInt32BE(0));
        state.headers.push(frame.headers);
        const late = Number(frame.headers['soa-deadline-ms']) <= 1;
        const wrong = frame.headers['soa-instance'] !== undefined && frame.headers['soa-instance'] !== id;
        if (late || wrong) {
          reply(socket, frame.seqid, { 'soa-error': late ? 'late' : 'wrong-target' }, Buffer.alloc(0));
          continue;
        }
        const out = new Capture();
        out.done = (payload) => reply(socket, frame.seqid, {}, payload);
        processor.process(new thrift.TBinaryProtocol(new thrift.TFramedTransport(frame.payload)), new thrift.TBinaryProtocol(out));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = server.address().port;
  state.instance = inst(state.port, { theader: true, id });
  state.close = () => new Promise((r) => { for (const s of state.sockets) s.destroy(); server.close(r); });
  return state;
}

/** A port nothing listens on. */
async function deadPort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => { s.close(r); });
  return port;
}

/** A server that reads a request and then drops the connection: the call was sent. */
async function droppingServer() {
  const state = { connections: 0 };
  const server = net.createServer((s) => { state.connections += 1; s.once('data', () => s.destroy()); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = server.address().port;
  state.instance = inst(state.port);
  state.close = () => new Promise((r) => { server.close(r); });
  return state;
}

function inst(port, extra = {}) {
  return {
    service: 'echo', host: '127.0.0.1', port, weight: 100, protocol: 'binary', transport: 'buffered', version: '',
    idl_hash: '', tags: {}, pid: 0, started_at: 0, id: '', theader: false, tls: false, metrics_port: 0, ...extra,
  };
}

const quiet = () => { const warnings = []; return { warnings, warn: (m) => warnings.push(m) }; };

module.exports = { echoService, plainServer, theaderServer, droppingServer, deadPort, inst, quiet, ROOT };
