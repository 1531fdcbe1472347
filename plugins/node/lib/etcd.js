'use strict';
/**
 * etcd's v3 JSON gateway over plain HTTP: range over a prefix, and a streaming watch. A request
 * that cannot reach an endpoint goes to the next one; the one that answered is tried first next
 * time.
 */

class Compacted extends Error {
  constructor() {
    super("etcd: the watch's start revision was compacted");
    this.name = 'Compacted';
  }
}

const b64 = (buf) => Buffer.from(buf).toString('base64');

/** The end of the range holding every key that starts with `prefix`. */
function rangeEnd(prefix) {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i -= 1) {
    if (end[i] < 0xff) {
      end[i] += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function decodeKv(kv) {
  return {
    key: Buffer.from(kv.key || '', 'base64').toString('utf8'),
    value: Buffer.from(kv.value || '', 'base64'),
    modRevision: Number(kv.mod_revision || 0),
  };
}

class Gateway {
  /** `endpoints`: URLs or host:port; `timeout`: per (non-watch) request, in ms. */
  constructor(endpoints, timeout = 2000) {
    this.endpoints = endpoints
      .map((e) => e.trim().replace(/\/+$/, ''))
      .filter(Boolean)
      .map((e) => (e.includes('://') ? e : `http://${e}`));
    if (this.endpoints.length === 0) throw new Error('etcd: no endpoints configured');
    this.timeout = timeout;
    this.current = 0;
  }

  /**
   * POSTs `body` to `path` on each endpoint in turn until one answers 200: `{response, done}`,
   * where done() ends the timeout of a list request once its body is read.
   */
  async post(path, body, { signal, stream = false } = {}) {
    const errors = [];
    const n = this.endpoints.length;
    for (let k = 0; k < n; k += 1) {
      const i = (this.current + k) % n;
      // A list request must end within the timeout; a watch stream must only start within it.
      const limit = new AbortController();
      const timer = setTimeout(() => limit.abort(new Error(`no answer within ${this.timeout} ms`)), this.timeout);
      try {
        const response = await fetch(this.endpoints[i] + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: signal ? AbortSignal.any([signal, limit.signal]) : limit.signal,
        });
        if (stream) clearTimeout(timer);
        if (response.status !== 200) {
          throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
        }
        this.current = i;
        return { response, done: () => clearTimeout(timer) };
      } catch (e) {
        clearTimeout(timer);
        if (signal && signal.aborted) throw e;
        const why = limit.signal.aborted ? limit.signal.reason : e.cause || e;
        errors.push(`${this.endpoints[i]}: ${why.message || why.code || why}`);
      }
    }
    throw new Error(`etcd unreachable: ${errors.join('; ')}`);
  }

  /** Every key under `prefix`: `{kvs: [{key, value, modRevision}], revision}`. */
  async range(prefix, { signal } = {}) {
    const { response, done } = await this.post('/v3/kv/range', { key: b64(prefix), range_end: b64(rangeEnd(prefix)) }, { signal });
    let data;
    try {
      data = await response.json();
    } finally {
      done();
    }
    return { kvs: (data.kvs || []).map(decodeKv), revision: Number(data.header.revision) };
  }

  /**
   * Streams changes under `prefix` from revision `fromRevision` to `onEvents([{type, kv}])`
   * until `signal` aborts or the stream breaks; always rejects (Compacted when the start
   * revision is gone).
   */
  async watch(prefix, fromRevision, onEvents, { signal } = {}) {
    const body = {
      create_request: { key: b64(prefix), range_end: b64(rangeEnd(prefix)), start_revision: String(fromRevision) },
    };
    const { response } = await this.post('/v3/watch', body, { signal, stream: true });
    let pending = '';
    const decoder = new TextDecoder();
    for await (const chunk of response.body) {
      pending += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line) this.onMessage(JSON.parse(line), onEvents);
      }
    }
    throw new Error('etcd watch: the stream ended');
  }

  onMessage(msg, onEvents) {
    if (msg.error) throw new Error(`etcd watch: ${msg.error.message}`);
    const r = msg.result;
    if (!r) return;
    if (Number(r.compact_revision || 0) > 0) throw new Compacted();
    if (r.canceled) throw new Error(`etcd watch canceled: ${r.cancel_reason || ''}`);
    if (r.events && r.events.length) {
      onEvents(r.events.map((e) => ({ type: e.type === 'DELETE' ? 'delete' : 'put', kv: decodeKv(e.kv) })));
    }
  }
}

module.exports = { Gateway, Compacted, rangeEnd };
