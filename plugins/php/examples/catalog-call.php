<?php
/**
 * Resolves the catalog service through etcd and calls it with the Thrift client code generated
 * from idl/catalog.thrift, then prints a JSON summary: calls each address served, calls that
 * failed, connections refused (and so retried on another instance), and products listed.
 *
 *   mkdir -p /tmp/gen-php && thrift -r --gen php -out /tmp/gen-php idl/catalog.thrift
 *   php plugins/php/examples/catalog-call.php --gen /tmp/gen-php --etcd 127.0.0.1:2379 --prefix /soa --calls 20
 */

require __DIR__ . '/../src/autoload.php';

$opts = getopt('', ['gen:', 'etcd:', 'prefix:', 'calls:']) + ['etcd' => '127.0.0.1:2379', 'prefix' => '/soa', 'calls' => 20];
Soa\Autoload::addPsr4('Shop\\', $opts['gen'] . '/Shop');

$out = ['calls' => 0, 'failed' => 0, 'served' => new stdClass(), 'refused' => 0, 'products' => 0, 'errors' => []];
$registry = new Soa\Registry(['endpoints' => explode(',', $opts['etcd']), 'prefix' => $opts['prefix']]);
$catalog = new Soa\Client($registry, 'catalog', Shop\Catalog\CatalogServiceClient::class, [
    'timeout_ms' => 5000,
    'idempotent' => ['ping', 'list_products'],
    'on_connect_error' => function () use (&$out) {
        $out['refused']++;
    },
]);
for ($i = 0; $i < (int) $opts['calls']; $i++) {
    $out['calls']++;
    try {
        $pong = $catalog->ping();
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
    $out['products'] = count($catalog->list_products(0, 100));
} catch (Throwable $e) {
    $out['failed']++;
    $out['errors'][] = 'list_products: ' . get_class($e) . ': ' . $e->getMessage();
}
echo json_encode($out), "\n";
