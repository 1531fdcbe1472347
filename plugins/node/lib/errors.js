'use strict';
/**
 * The plugin's errors. Every one is a SoaError; those about one call say whether the request
 * reached the wire (`sent`): a call that was not sent may always go to another instance, one
 * that was sent is retried only when its method is marked idempotent. Exceptions declared in the
 * IDL, and Thrift's TApplicationException, are answers and pass through as they are.
 */

/** A cause's message on one line. */
/** OpenSSL's reason ("tlsv13 alert certificate required") for its errors, not its source path. */
const tlsReason = (cause) => (cause && typeof cause.code === 'string' && cause.code.startsWith('ERR_SSL_') && cause.reason ? cause.reason : null);
const oneLine = (cause) => String(tlsReason(cause) || (cause && cause.message ? cause.message : cause)).replace(/\s+/g, ' ').trim();
/** Whether `cause` is a TLS alert from the server: it refused the session, so nothing was served. */
const tlsRefused = (cause) => Boolean(tlsReason(cause)) && cause.code.includes('_ALERT_');

class SoaError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = this.constructor.name;
  }
}

/** Bad options given to the plugin (a programming error; thrown, never retried). */
class ConfigError extends SoaError {}

/** The registry could not be read (etcd unreachable, refused credentials, bad TLS files). */
class DiscoveryError extends SoaError {}

/** No usable instance: none registered, all weight 0, IDL-excluded or ejected, or all tried. */
class NoInstanceAvailable extends DiscoveryError {
  constructor(service, reason, attempts = []) {
    super(`soa: no instance of ${service} available: ${reason}`);
    this.service = service;
    this.attempts = attempts;
  }
}

/** The connection failed or broke. `sent`: whether the request may have reached the server. */
class TransportError extends SoaError {
  constructor(message, { address, sent, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.address = address;
    this.sent = Boolean(sent);
  }
}

/** The connection could not be made (refused, timed out, TLS handshake failed): not sent. */
class ConnectError extends TransportError {
  constructor(address, cause) {
    super(`soa: cannot connect to ${address}: ${oneLine(cause)}`, { address, sent: false, cause });
  }
}

/** The instance answered `soa-error: wrong-target`: it serves another service or instance now;
 * the call was not executed, so it goes to another instance and this one is left out. */
class WrongTarget extends TransportError {
  constructor(address, detail) {
    super(`soa: ${address} serves another service or instance now${detail ? `: ${detail}` : ''}`, { address, sent: false });
  }
}

/** The call's deadline passed: before an answer came (it may have run), or on arrival at the
 * server (`late`: the server refused it unexecuted). Never retried. */
class DeadlineExceeded extends SoaError {
  constructor(message, { address = null, sent = true, late = false } = {}) {
    super(message);
    this.address = address;
    this.sent = sent;
    this.late = late;
  }
}

/** Every attempt of a retried call failed; `attempts` holds each attempt's error, in order. */
class RetryError extends SoaError {
  constructor(service, method, attempts) {
    super(`soa: ${service}.${method} failed after ${attempts.length} attempts: ${attempts.map((e) => e.message).join('; ')}`,
      { cause: attempts[attempts.length - 1] });
    this.attempts = attempts;
  }
}

module.exports = {
  oneLine, tlsRefused, SoaError, ConfigError, DiscoveryError, NoInstanceAvailable, TransportError, ConnectError, WrongTarget, DeadlineExceeded, RetryError,
};
