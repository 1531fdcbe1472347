<?php
/**
 * Router for `php -S` (one process serving HTTP requests one after another, as a php-fpm worker
 * does): each request makes SOA_CALLS echo calls through a new Registry and Client, as a PHP
 * page would, and answers with JSON {"served": [addresses], "opened": connections opened}.
 * Environment: SOA_GEN (generated echo code), SOA_ETCD, SOA_PREFIX, SOA_PERSIST (1/0), SOA_CALLS.
 */

require __DIR__ . '/../../src/autoload.php';
Soa\Autoload::addPsr4('', getenv('SOA_GEN'));

$registry = new Soa\Registry(['endpoints' => explode(',', getenv('SOA_ETCD')), 'prefix' => getenv('SOA_PREFIX'),
    'cache' => 'none', 'logger' => fn () => null]);
$client = new Soa\Client($registry, 'echo', EchoServiceClient::class, [
    'persist' => getenv('SOA_PERSIST') === '1', 'logger' => fn () => null,
]);
$served = [];
for ($n = 0; $n < (int) getenv('SOA_CALLS'); $n++) {
    $client->echo("request $n");
    $served[] = $client->lastInstance()->address();
}
header('Content-Type: application/json');
echo json_encode(['served' => $served, 'opened' => $client->pool()->opened()]);
