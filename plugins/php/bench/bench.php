<?php
/**
 * The PHP side of bench/plugin_php_bench.py. Calls the bench service (bench/bench.thrift)
 * sequentially for --seconds after a short warm-up and prints {"calls", "seconds", "p50_ms",
 * "p99_ms"}; with --once, makes one call and prints nothing (one process per call).
 *
 *   php bench.php --gen DIR --mode raw --address HOST:PORT --method ping|echo [--seconds S]
 *   php bench.php --gen DIR --mode plugin --etcd HOST:PORT --prefix P --method ping|echo [--persist 0|1]
 *
 * raw: Apache Thrift's own client, pinned to one address, one connection reused for every call
 * (TSocket, TBufferedTransport, TBinaryProtocol). plugin: Soa\Registry + Soa\Client, through
 * discovery (cached), balancing, the pool and the deadline, as an application would use it.
 */

require __DIR__ . '/../src/autoload.php';

$o = getopt('', ['gen:', 'mode:', 'address:', 'etcd:', 'prefix:', 'method:', 'seconds:', 'persist:', 'once']);
Soa\Autoload::addPsr4('', $o['gen']);
$method = $o['method'] ?? 'ping';
$args = $method === 'echo' ? [str_repeat('x', 1024)] : [];

if ($o['mode'] === 'raw') {
    [$host, $port] = explode(':', $o['address']);
    $socket = new Thrift\Transport\TSocket($host, (int) $port, ($o['persist'] ?? '0') === '1');
    $socket->setRecvTimeout(30000);
    $socket->setSendTimeout(30000);
    $transport = new Thrift\Transport\TBufferedTransport($socket, 8192, 8192);
    $transport->open();
    $client = new BenchServiceClient(new Thrift\Protocol\TBinaryProtocol($transport));
    $call = fn () => $client->$method(...$args);
} else {
    $registry = new Soa\Registry(['endpoints' => explode(',', $o['etcd']), 'prefix' => $o['prefix'],
        'cache' => 'auto']);
    $soa = new Soa\Client($registry, 'bench', BenchServiceClient::class, [
        'timeout_ms' => 30000, 'persist' => ($o['persist'] ?? '1') === '1',
    ]);
    $call = fn () => $soa->call($method, $args);
}

if (isset($o['once'])) {
    $call();
    exit(0);
}
$seconds = (float) ($o['seconds'] ?? 1.0);
for ($end = microtime(true) + min(0.3, $seconds / 4); microtime(true) < $end;) {
    $call(); // warm-up: connections open, code compiled
}
$times = [];
$start = hrtime(true);
$end = $start + (int) ($seconds * 1e9);
do {
    $t = hrtime(true);
    $call();
    $now = hrtime(true);
    $times[] = $now - $t;
} while ($now < $end);
sort($times);
$n = count($times);
echo json_encode(['calls' => $n, 'seconds' => ($now - $start) / 1e9,
    'p50_ms' => $times[intdiv($n, 2)] / 1e6, 'p99_ms' => $times[min($n - 1, (int) (0.99 * $n))] / 1e6]), "\n";
