'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { once } = require('node:events');
const { execFileSync } = require('node:child_process');
const thrift = require('thrift');
const soa = require('..');
const h = require('./helpers');

const Echo = h.echoService();

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all from openssl. */
function certs() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soa-node-tls-'));
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  for (const ca of ['ca', 'other-ca']) {
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${ca}`);
  }
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1', '-extfile', 'ext');
  }
  return (name) => path.join(dir, name);
}

/** Apache's Node server of EchoService over TLS, asking for (and requiring) a client certificate. */
async function tlsServer(file) {
  const state = { port: 0, calls: {} };
  const server = thrift.createServer(Echo, { echo: (m) => m, ping: () => {} }, {
    tls: { key: fs.readFileSync(file('server.key')), cert: fs.readFileSync(file('server.pem')), ca: fs.readFileSync(file('ca.pem')), requestCert: true, rejectUnauthorized: true },
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = server.address().port;
  state.instance = h.inst(state.port, { tls: true });
  state.close = () => new Promise((r) => { server.close(r); });
  return state;
}

test('instances with tls: true are dialled with TLS, verified against our CA, with our certificate', async () => {
  const file = certs();
  const server = await tlsServer(file);
  const good = new soa.Client({ instances: [server.instance] }, Echo, { service: 'echo', logger: h.quiet(), tls: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') } });
  const wrongCa = new soa.Client({ instances: [server.instance] }, Echo, { service: 'echo', logger: h.quiet(), tls: { ca: file('other-ca.pem'), cert: file('client.pem'), key: file('client.key') } });
  const noCert = new soa.Client({ instances: [server.instance] }, Echo, { service: 'echo', logger: h.quiet(), tls: { ca: file('ca.pem') } });
  const plain = new soa.Client({ instances: [{ ...server.instance, tls: false }] }, Echo, { service: 'echo', logger: h.quiet(), timeout: 500 });
  try {
    assert.equal(await good.call('echo', 'secret'), 'secret');
    await assert.rejects(wrongCa.call('echo', 'x'), (e) => e instanceof soa.ConnectError && !e.message.includes('\n'));
    await assert.rejects(noCert.call('echo', 'x'), (e) => e instanceof soa.SoaError && !e.message.includes('\n'));
    await assert.rejects(plain.call('echo', 'x'), soa.SoaError); // a plaintext client of a TLS server
    assert.equal(await good.call('echo', 'still serving'), 'still serving');
    assert.throws(() => new soa.Client({ instances: [] }, Echo, { tls: { ca: file('missing.pem') } }), /tls.ca: cannot read/);
  } finally {
    for (const c of [good, wrongCa, noCert, plain]) await c.close();
    await server.close();
  }
});

test('a TLS client calling a plaintext server gets one clear connect error', async () => {
  const file = certs();
  const server = await h.plainServer();
  const c = new soa.Client({ instances: [{ ...server.instance, tls: true }] }, Echo, { service: 'echo', logger: h.quiet(), tls: { ca: file('ca.pem') } });
  try {
    await assert.rejects(c.call('ping'), (e) => e instanceof soa.ConnectError && !e.message.includes('\n'));
    assert.equal(tls.DEFAULT_MIN_VERSION >= 'TLSv1.2', true);
  } finally {
    await c.close();
    await server.close();
  }
});
