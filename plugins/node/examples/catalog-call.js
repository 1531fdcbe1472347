'use strict';
/**
 * Resolves the catalog service through etcd and calls it with the Thrift client code generated
 * from idl/catalog.thrift, then prints a JSON summary: the calls each address served, and the
 * calls that failed. With --watch it instead prints the set of addresses each time it changes,
 * as a JSON array on a line, until its standard input closes.
 *
 * Generate the client code first (gen-nodejs/ is not committed); generated code elsewhere is
 * named by --gen (it needs `thrift` on its require path: NODE_PATH=plugins/node/node_modules):
 *   mkdir -p examples/gen-nodejs && thrift -r --gen js:node -out examples/gen-nodejs ../../idl/catalog.thrift
 *   node examples/catalog-call.js --etcd 127.0.0.1:2379 --prefix /soa --calls 20
 */

const path = require('node:path');
const { parseArgs } = require('node:util');
const soa = require('..');

async function main() {
  const { values } = parseArgs({
    options: {
      etcd: { type: 'string', default: '127.0.0.1:2379' },
      prefix: { type: 'string', default: '/soa' },
      calls: { type: 'string', default: '20' },
      watch: { type: 'boolean', default: false },
      gen: { type: 'string', default: path.join(__dirname, 'gen-nodejs') },
    },
  });
  const etcd = { endpoints: values.etcd.split(','), prefix: values.prefix };
  const CatalogService = require(path.resolve(values.gen, 'CatalogService')); // eslint-disable-line
  if (values.watch) {
    await watchSet(new soa.Registry({ etcd }));
    return;
  }
  const out = { calls: 0, failed: 0, served: {}, products: 0, errors: [] };
  const catalog = await soa.connect('catalog', CatalogService, { etcd, idempotent: ['ping', 'list_products'], timeout: 5000 });
  try {
    for (let i = 0; i < Number(values.calls); i += 1) {
      out.calls += 1;
      try {
        const pong = await catalog.call('ping');
        if (pong !== 'pong') throw new Error(`ping answered ${pong}`);
        const addr = soa.address(catalog.lastInstance);
        out.served[addr] = (out.served[addr] || 0) + 1;
      } catch (e) {
        out.failed += 1;
        out.errors.push(`ping: ${e.message}`);
      }
    }
    out.products = (await catalog.call('list_products', 0, 100)).length;
  } finally {
    await catalog.close();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Prints catalog's addresses as a JSON array whenever they change, until stdin closes. */
async function watchSet(registry) {
  const resolver = await registry.resolve('catalog');
  let printed = '-';
  const print = (instances) => {
    const line = JSON.stringify(instances.map(soa.address));
    if (line !== printed) {
      printed = line;
      process.stdout.write(`${line}\n`);
    }
  };
  print(resolver.instances);
  resolver.on('change', print);
  process.stdin.resume();
  await new Promise((resolve) => { process.stdin.on('end', resolve); process.stdin.on('close', resolve); });
  await resolver.close();
  registry.close();
}

main().catch((e) => {
  process.stderr.write(e instanceof soa.SoaError ? `error: ${e.message}\n` : `${e.stack || e}\n`);
  process.exit(1);
});
