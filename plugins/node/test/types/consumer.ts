// A consumer of index.d.ts, type-checked by `tsc --noEmit -p test/types` (never run).
import * as soa from '@soa/plugin';

declare const CatalogService: { Client: new (output: unknown, protocol: unknown) => object };

async function main(): Promise<void> {
  const catalog: soa.Client = await soa.connect('catalog', CatalogService, {
    etcd: { endpoints: ['127.0.0.1:2379'], user: 'reader', password: 'secret', tls: { ca: 'ca.pem' } },
    balancer: 'consistent_hash',
    hashKey: (method, args) => String(args[0]),
    idempotent: ['ping'],
    timeout: 500,
  });
  const pong: string = await catalog.call<string>('ping');
  const product = await catalog.invoke<{ product_id: string }>('get_product', ['p-1'], { timeout: 200, hashKey: 'p-1' });
  console.log(pong, product.product_id, catalog.lastInstance?.theader, catalog.stats());
  try {
    await catalog.call('ping');
  } catch (e) {
    if (e instanceof soa.DeadlineExceeded && e.late) console.log('refused unexecuted by', e.address);
    else if (e instanceof soa.RetryError) console.log(e.attempts.length);
    else if (e instanceof soa.TransportError) console.log(e.sent);
  }
  const registry = new soa.Registry({ etcd: { prefix: '/soa' } });
  const resolver = await registry.resolve('catalog');
  resolver.on('change', (set: soa.Instance[]) => console.log(set.map(soa.address)));
  const picker = new soa.balancers.ConsistentHash().picker(resolver.instances);
  const chosen: soa.Instance | null = picker.pick('user-1');
  console.log(chosen?.metrics_port, soa.balancers.hash64('x') > 0n);
  await resolver.close();
  registry.close();
  await catalog.close();
}

main().catch(() => process.exit(1));
