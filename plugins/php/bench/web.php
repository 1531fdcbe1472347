<?php
/**
 * Router for `php -S` in bench/plugin_php_bench.py: one bench call per HTTP request, as a PHP
 * page served by a long-lived worker would make it. Environment: SOA_GEN, SOA_MODE (raw or
 * plugin), SOA_ADDRESS (raw), SOA_ETCD and SOA_PREFIX (plugin), SOA_PERSIST (1 or 0).
 */

require __DIR__ . '/../src/autoload.php';
Soa\Autoload::addPsr4('', getenv('SOA_GEN'));
$persist = getenv('SOA_PERSIST') === '1';
if (getenv('SOA_MODE') === 'raw') {
    [$host, $port] = explode(':', getenv('SOA_ADDRESS'));
    $socket = new Thrift\Transport\TSocket($host, (int) $port, $persist);
    $socket->setRecvTimeout(30000);
    $transport = new Thrift\Transport\TBufferedTransport($socket, 8192, 8192);
    if (!$transport->isOpen()) {
        $transport->open();
    }
    (new BenchServiceClient(new Thrift\Protocol\TBinaryProtocol($transport)))->ping();
    if (!$persist) {
        $transport->close();
    }
} else {
    $registry = new Soa\Registry(['endpoints' => explode(',', getenv('SOA_ETCD')), 'prefix' => getenv('SOA_PREFIX')]);
    (new Soa\Client($registry, 'bench', BenchServiceClient::class, ['persist' => $persist]))->ping();
}
echo 'ok';
