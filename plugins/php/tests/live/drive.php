<?php
/**
 * Drives the echo service (tests/fixtures/echo.thrift) through the plugin for
 * tests/test_plugin_php.py and prints one JSON summary line:
 *   {"calls", "failed", "errors": [first few], "error_types": {class: n}, "served": {address: n},
 *    "refused": connects refused, "opened": connections opened, "keys": {key: address},
 *    "first_seen": {address: Unix time of its first answer}}
 *
 *   php drive.php --gen DIR --etcd HOST:PORT --prefix P [--calls N | --duration S]
 *       [--balancer NAME] [--method echo|sleep|call_count] [--idempotent] [--timeout-ms MS]
 *       [--keys K] [--cache auto|apcu|file|none] [--cache-dir D] [--cache-ttl S] [--stale-ttl S]
 *       [--retries N] [--persist 0|1] [--pause-ms MS] [--idl-hash H] [--idl-mismatch warn|exclude]
 *       [--user U --password P] [--ca F --cert F --key F]   (etcd authentication and TLS)
 *       [--tls-ca F [--tls-cert F --tls-key F]]   (TLS to instances that registered "tls": true)
 *       [--instances JSON]   (a fixed list of registry values instead of etcd; round robin from the first)
 *       [--size N]   (echo N bytes, and count a reply that is not the same N bytes as failed)
 *   php drive.php --gen DIR --late HOST:PORT   (one raw THeader call with soa-deadline-ms: 1)
 */

require __DIR__ . '/../../src/autoload.php';

$o = getopt('', ['gen:', 'etcd:', 'prefix:', 'calls:', 'duration:', 'balancer:', 'method:', 'idempotent',
    'timeout-ms:', 'keys:', 'cache:', 'cache-dir:', 'cache-ttl:', 'stale-ttl:', 'persist:', 'pause-ms:',
    'idl-hash:', 'idl-mismatch:', 'late:', 'service:', 'instances:', 'user:', 'password:', 'ca:', 'cert:', 'key:',
    'tls-ca:', 'tls-cert:', 'tls-key:', 'retries:', 'size:']);
Soa\Autoload::addPsr4('', $o['gen']);

if (isset($o['late'])) {
    [$host, $port] = explode(':', $o['late']);
    $socket = new Soa\Socket($host, (int) $port, false);
    $socket->setDeadline(microtime(true) + 5);
    $socket->open();
    $transport = new Soa\THeaderTransport($socket, Soa\THeaderTransport::PROTOCOL_BINARY, $o['late']);
    $transport->setHeaders(['soa-deadline-ms' => '1', 'soa-service' => $o['service'] ?? 'echo']);
    $client = new EchoServiceClient(new Thrift\Protocol\TBinaryProtocol($transport));
    try {
        $client->echo('late');
        echo json_encode(['refused' => false]), "\n";
    } catch (Soa\RpcTimeout $e) {
        echo json_encode(['refused' => $e->refused, 'message' => $e->getMessage(),
            'headers' => $transport->replyHeaders()]), "\n";
    }
    exit(0);
}

$out = ['calls' => 0, 'failed' => 0, 'errors' => [], 'error_types' => new stdClass(), 'served' => new stdClass(),
    'refused' => 0, 'opened' => 0, 'keys' => new stdClass(), 'first_seen' => new stdClass()];
$registry = new Soa\Registry(array_filter([
    'endpoints' => explode(',', $o['etcd']), 'prefix' => $o['prefix'],
    'cache' => $o['cache'] ?? 'none', 'cache_dir' => $o['cache-dir'] ?? null,
    'cache_ttl' => isset($o['cache-ttl']) ? (float) $o['cache-ttl'] : null,
    'stale_ttl' => isset($o['stale-ttl']) ? (float) $o['stale-ttl'] : null,
    'timeout' => 0.5, 'logger' => fn () => null,
    'user' => $o['user'] ?? null, 'password' => $o['password'] ?? null,
    'tls' => isset($o['ca']) ? array_filter(['ca' => $o['ca'], 'cert' => $o['cert'] ?? null, 'key' => $o['key'] ?? null]) : null,
], fn ($v) => $v !== null));
$source = $registry;
$balancer = $o['balancer'] ?? 'round_robin';
if (isset($o['instances'])) {
    $source = array_map(fn ($v) => Soa\Instance::parse(json_encode($v)), json_decode($o['instances']));
    $balancer = new Soa\Balancer\RoundRobin(0);
}
$method = $o['method'] ?? 'echo';
$client = new Soa\Client($source, $o['service'] ?? 'echo', EchoServiceClient::class, array_filter([
    'balancer' => $balancer,
    'timeout_ms' => isset($o['timeout-ms']) ? (int) $o['timeout-ms'] : 2000,
    'idempotent' => isset($o['idempotent']) ? [$method] : [],
    'persist' => ($o['persist'] ?? '1') === '1',
    'idl_hash' => $o['idl-hash'] ?? null,
    'idl_mismatch' => $o['idl-mismatch'] ?? null,
    'hash_key' => 0,
    'retries' => isset($o['retries']) ? (int) $o['retries'] : null,
    'tls' => isset($o['tls-ca']) ? array_filter(['ca' => $o['tls-ca'], 'cert' => $o['tls-cert'] ?? null,
        'key' => $o['tls-key'] ?? null]) : null,
    'logger' => fn () => null,
    'on_connect_error' => function () use (&$out) {
        $out['refused']++;
    },
], fn ($v) => $v !== null));

$args = match ($method) {
    'echo' => [isset($o['size']) ? str_repeat('0123456789', intdiv((int) $o['size'], 10) + 1) : 'x'],
    'sleep' => [0.0],
    default => [],
};
$keys = (int) ($o['keys'] ?? 0);
$until = isset($o['duration']) ? microtime(true) + (float) $o['duration'] : INF;
$calls = (int) ($o['calls'] ?? ($keys ?: PHP_INT_MAX));
$pause = (int) ($o['pause-ms'] ?? 0) * 1000;
for ($n = 0; $n < $calls && microtime(true) < $until; $n++) {
    $out['calls']++;
    $callArgs = $keys ? ["key-$n"] : $args;
    try {
        $result = $client->call($method, $callArgs);
        if (isset($o['size']) && $result !== $callArgs[0]) {
            throw new UnexpectedValueException('the echo came back with ' . strlen($result) . ' bytes, not '
                . strlen($callArgs[0]));
        }
        $addr = $client->lastInstance()->address();
        $out['served']->$addr = ($out['served']->$addr ?? 0) + 1;
        $out['first_seen']->$addr ??= microtime(true);
        if ($keys) {
            $out['keys']->{"key-$n"} = $addr;
        }
    } catch (Throwable $e) {
        $out['failed']++;
        $type = get_class($e);
        $out['error_types']->$type = ($out['error_types']->$type ?? 0) + 1;
        if (count($out['errors']) < 5) {
            $out['errors'][] = "$type: {$e->getMessage()}";
        }
    }
    if ($pause) {
        usleep($pause);
    }
}
$out['opened'] = $client->pool()->opened();
echo json_encode($out), "\n";
