'use strict';
/**
 * The IDL fingerprint this client was generated from, and the mismatch policy (as the Python
 * client's): an instance whose registry `idl_hash` differs from ours is used with one warning
 * per instance and hash (`warn`), or left out (`exclude`). An empty hash on either side is
 * unknown, and the instance is used.
 *
 * `soa gen` writes `soa_idl.js` (`{ service, idlHash }`) next to the generated Node code;
 * `findIdlHash(ServiceClient)` finds it next to the module the caller passed in.
 */

const fs = require('node:fs');
const path = require('node:path');

/** The idlHash of the soa_idl.js next to the generated module `generated` ('' when none). */
function findIdlHash(generated) {
  for (const mod of Object.values(require.cache)) {
    if (!mod || (mod.exports !== generated && (!mod.exports || mod.exports.Client !== generated))) continue;
    const file = path.join(path.dirname(mod.filename), 'soa_idl.js');
    if (!fs.existsSync(file)) return '';
    const info = require(file); // eslint-disable-line global-require, import/no-dynamic-require
    return typeof info.idlHash === 'string' ? info.idlHash : '';
  }
  return '';
}

class IdlPolicy {
  /** `mine`: our idl hash ('' = unknown); `mode`: 'warn' | 'exclude'; `logger.warn`. */
  constructor(service, mine, mode, logger) {
    if (mode !== 'warn' && mode !== 'exclude') throw new TypeError(`soa: idlMismatch: expected "warn" or "exclude", got ${JSON.stringify(mode)}`);
    this.service = service;
    this.mine = mine;
    this.mode = mode;
    this.logger = logger;
    this.warned = new Set();
  }

  /** Whether `instance` may take calls; warns once per address and hash on a mismatch. */
  accepts(instance, addr) {
    const theirs = instance.idl_hash;
    if (!theirs || !this.mine || theirs === this.mine) return true;
    const exclude = this.mode === 'exclude';
    const mark = `${addr} ${theirs}`;
    if (!this.warned.has(mark)) {
      this.warned.add(mark);
      this.logger.warn(`soa: ${this.service}: ${addr} serves IDL ${theirs} but this client has ${this.mine}; ${exclude ? 'excluding it (idlMismatch: exclude)' : 'using it anyway'}`);
    }
    return !exclude;
  }
}

module.exports = { findIdlHash, IdlPolicy };
