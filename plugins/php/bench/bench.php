<?php
/**
 * The PHP side of bench/plugin_php_bench.py. Calls the bench service (bench/bench.thrift)
 * sequentially for --seconds after a short warm-up and prints {"calls", "seconds", "p50_ms",
 * "p99_ms"}; with --mode compare, both clients take turns and it prints {"raw": {...},
 * "plugin": {...}}; with --once, makes one call and prints nothing (one process per call).
 *
 *   php bench.php --gen DIR --mode raw --address HOST:PORT --method ping|echo [--seconds S]
 *   php bench.php --gen DIR --mode plugin --etcd HOST:PORT --prefix P --method ping|echo [--persist 0|1]
 *   php bench.php --gen DIR --mode compare --address HOST:PORT --etcd HOST:PORT --prefix P [--slices 6]
 *
 * raw: Apache Thrift's own client, pinned to one address, one connection reused for every call
 * (TSocket, TBufferedTransport, TBinaryProtocol). plugin: Soa\Registry + Soa\Client, through
 * discovery (cached), balancing, the pool and the deadline, as an application would use it.
 */

require __DIR__ . '/../src/autoload.php';

$o = getopt('', ['gen:', 'mode:', 'address:', 'etcd:', 'prefix:', 'method:', 'seconds:', 'slices:', 'persist:', 'once']);
Soa\Autoload::addPsr4('', $o['gen']);
$method = $o['method'] ?? 'ping';
$args = $method === 'echo' ? [str_repeat('x', 1024)] : [];

$makeRaw = function () use ($o, $method, $args) {
    [$host, $port] = explode(':', $o['address']);
    $socket = new Thrift\Transport\TSocket($host, (int) $port, ($o['persist'] ?? '0') === '1');
    $socket->setRecvTimeout(30000);
    $socket->setSendTimeout(30000);
    $transport = new Thrift\Transport\TBufferedTransport($socket, 8192, 8192);
    $transport->open();
    $client = new BenchServiceClient(new Thrift\Protocol\TBinaryProtocol($transport));
    return fn () => $client->$method(...$args);
};
$makePlugin = function () use ($o, $method, $args) {
    $registry = new Soa\Registry(['endpoints' => explode(',', $o['etcd']), 'prefix' => $o['prefix'],
        'cache' => 'auto']);
    $soa = new Soa\Client($registry, 'bench', BenchServiceClient::class, [
        'timeout_ms' => 30000, 'persist' => ($o['persist'] ?? '1') === '1',
    ]);
    return fn () => $soa->call($method, $args);
};

if (isset($o['once'])) {
    ($o['mode'] === 'raw' ? $makeRaw() : $makePlugin())();
    exit(0);
}

/** Calls $call for $seconds; the nanoseconds of each call are appended to $times. */
function turn(callable $call, float $seconds, array &$times): void
{
    $end = hrtime(true) + (int) ($seconds * 1e9);
    do {
        $t = hrtime(true);
        $call();
        $now = hrtime(true);
        $times[] = $now - $t;
    } while ($now < $end);
}

function result(array $times, float $seconds): array
{
    sort($times);
    $n = count($times);
    return ['calls' => $n, 'seconds' => $seconds, 'p50_ms' => $times[intdiv($n, 2)] / 1e6,
        'p99_ms' => $times[min($n - 1, (int) (0.99 * $n))] / 1e6];
}

// compare: both clients in this process, taking --slices turns each of seconds / slices, in an
// order that rotates every turn (as bench/harness.py's compare()); otherwise the one --mode.
$modes = $o['mode'] === 'compare' ? ['raw', 'plugin'] : [$o['mode']];
$calls = [];
foreach ($modes as $mode) {
    $calls[$mode] = $mode === 'raw' ? $makeRaw() : $makePlugin();
}
$seconds = (float) ($o['seconds'] ?? 1.0);
$slices = max(1, (int) ($o['slices'] ?? 6));
$times = [];
foreach ($calls as $mode => $call) {
    $warm = [];
    turn($call, min(0.3, $seconds / 4), $warm); // warm-up: connections open, code compiled
    $times[$mode] = [];
}
for ($turn = 0; $turn < $slices; $turn++) {
    for ($i = 0; $i < count($modes); $i++) {
        $mode = $modes[($turn + $i) % count($modes)];
        turn($calls[$mode], $seconds / $slices, $times[$mode]);
    }
}
$out = [];
foreach ($modes as $mode) {
    $out[$mode] = result($times[$mode], $seconds);
}
echo json_encode(count($modes) === 1 ? $out[$modes[0]] : $out), "\n";
