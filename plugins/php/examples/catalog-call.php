<?php
/**
 * Resolves the catalog service through etcd and calls it with the Thrift client code generated
 * from idl/catalog.thrift, then prints a JSON summary: calls each address served, calls that
 * failed, and connections refused (and so retried on another instance). With --watch it instead
 * prints the set of addresses each time it changes (as PHP has no watch: re-listed when the
 * registry's cache_ttl has passed), as a JSON array on a line, until its standard input closes.
 *
 *   mkdir -p /tmp/gen-php && thrift -r --gen php -out /tmp/gen-php idl/catalog.thrift
 *   php plugins/php/examples/catalog-call.php --gen /tmp/gen-php --etcd 127.0.0.1:2379 --prefix /soa --calls 20
 */

require __DIR__ . '/../src/autoload.php';

$opts = getopt('', ['gen:', 'etcd:', 'prefix:', 'calls:', 'watch']) + ['etcd' => '127.0.0.1:2379', 'prefix' => '/soa', 'calls' => 20];
Soa\Autoload::addPsr4('Shop\\', $opts['gen'] . '/Shop');

if (isset($opts['watch'])) {
    $registry = new Soa\Registry(['endpoints' => explode(',', $opts['etcd']), 'prefix' => $opts['prefix'],
        'cache_ttl' => 0.2, 'cache_dir' => null]);
    $printed = '-';
    for (;;) {
        $line = json_encode(array_map(fn ($i) => $i->address(), $registry->instances('catalog')));
        if ($line !== $printed) {
            echo ($printed = $line), "\n";
        }
        $read = [STDIN];
        $none = null;
        if (stream_select($read, $none, $none, 0, 200000) > 0 && fgets(STDIN) === false) {
            exit(0); // stdin closed
        }
    }
}

$out = ['calls' => 0, 'failed' => 0, 'served' => new stdClass(), 'refused' => 0, 'products' => 0, 'errors' => []];
$registry = new Soa\Registry(['endpoints' => explode(',', $opts['etcd']), 'prefix' => $opts['prefix']]);
$catalog = new Soa\Client($registry, 'catalog', Shop\Catalog\CatalogServiceClient::class, [
    'connect_timeout_ms' => 500,
    'timeout_ms' => 5000,
    'on_connect_error' => function () use (&$out) {
        $out['refused']++;
    },
]);
for ($i = 0; $i < (int) $opts['calls']; $i++) {
    $out['calls']++;
    try {
        $pong = $catalog->call(fn (Shop\Catalog\CatalogServiceClient $c) => $c->ping());
        if ($pong !== 'pong') {
            throw new UnexpectedValueException("ping answered $pong");
        }
        $addr = $catalog->lastInstance()->address();
        $out['served']->$addr = ($out['served']->$addr ?? 0) + 1;
    } catch (Throwable $e) {
        $out['failed']++;
        $out['errors'][] = 'ping: ' . get_class($e) . ': ' . $e->getMessage();
    }
}
try {
    $out['products'] = count($catalog->call(fn ($c) => $c->list_products(0, 100)));
} catch (Throwable $e) {
    $out['failed']++;
    $out['errors'][] = 'list_products: ' . get_class($e) . ': ' . $e->getMessage();
}
echo json_encode($out), "\n";
