'use strict';
/**
 * Is an instance up? A `ping()` call when the IDL has one without arguments, else a TCP
 * connect (as soa/clients/probe.py): a connect alone cannot tell a stopped or wedged process
 * from a healthy one, since the kernel completes the handshake for it; a ping can. Any reply
 * counts as alive, an application error included. `probe(instance)` resolves to a boolean and
 * never rejects; it uses a connection of its own, closed afterwards.
 */

const { performance } = require('node:perf_hooks');
const { Connection, clientClass } = require('./connection');
const { TransportError, DeadlineExceeded } = require('./errors');

function prober(ServiceClient, { connectTimeout = 250, timeout = 1000, tls } = {}) {
  const proto = clientClass(ServiceClient).prototype;
  const hasPing = typeof proto.send_ping === 'function' && proto.send_ping.length === 0 && typeof proto.recv_ping === 'function';
  return async (instance) => {
    let conn;
    try {
      conn = await Connection.open(instance, { timeout: connectTimeout, tls, ServiceClient });
    } catch (e) {
      return false;
    }
    try {
      if (!hasPing) return true;
      const deadline = performance.now() + timeout;
      await conn.call('ping', [], instance.theader ? {} : null, deadline, deadline);
      return true;
    } catch (e) {
      return !(e instanceof TransportError || e instanceof DeadlineExceeded);
    } finally {
      conn.close();
    }
  };
}

module.exports = { prober };
