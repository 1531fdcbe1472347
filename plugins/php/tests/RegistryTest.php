<?php

use Soa\DiscoveryError;
use Soa\Registry;

/** A free 127.0.0.1 port (nothing listens on it once returned). */
function free_port(): int
{
    $server = stream_socket_server('tcp://127.0.0.1:0');
    $port = (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
    fclose($server);
    return $port;
}

/** `php -S` with fake_etcd.php, serving the keys of $state; stopped by the returned closure. */
function fake_etcd(array $state): array
{
    $file = tempnam(sys_get_temp_dir(), 'fake-etcd-');
    file_put_contents($file, json_encode($state));
    $port = free_port();
    $proc = proc_open(
        [PHP_BINARY, '-S', "127.0.0.1:$port", __DIR__ . '/fake_etcd.php'],
        [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']],
        $pipes,
        null,
        ['FAKE_ETCD_STATE' => $file],
    );
    $deadline = microtime(true) + 10;
    while (!($probe = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $errstr, 1))) {
        if (microtime(true) > $deadline) {
            proc_terminate($proc);
            throw new RuntimeException("fake etcd did not start on port $port");
        }
        usleep(20000);
    }
    fclose($probe);
    $stop = function () use ($proc, $file) {
        proc_terminate($proc);
        proc_close($proc);
        @unlink($file);
    };
    return ["127.0.0.1:$port", $file, $stop];
}

function value(string $host, int $port, string $extra = ''): string
{
    return "{\"service\":\"catalog\",\"host\":\"$host\",\"port\":$port$extra}";
}

function addresses(array $instances): string
{
    return implode(' ', array_map(fn ($i) => $i->address(), $instances));
}

test('registry: fails over between endpoints, skips invalid values with a warning, drops leaving', function () {
    [$endpoint, , $stop] = fake_etcd([
        '/t/services/catalog/10.0.0.1:1' => value('10.0.0.1', 1),
        '/t/services/catalog/10.0.0.2:2' => value('10.0.0.2', 2, ',"protocol":"compact","transport":"framed"'),
        '/t/services/catalog/10.0.0.3:3' => '{"service":"catalog","host":"10.0.0.3","port":"3"}',
        '/t/services/catalog/10.0.0.4:4' => value('10.0.0.4', 4, ',"leaving":true'),
        '/t/services/catalog/10.0.0.5:6' => value('10.0.0.5', 5),
        '/t/services/other/10.0.0.9:9' => value('10.0.0.9', 9),
    ]);
    try {
        $warnings = [];
        $registry = new Registry([
            'endpoints' => ['127.0.0.1:' . free_port(), "http://$endpoint"], 'prefix' => '/t',
            'cache_dir' => null, 'logger' => function ($m) use (&$warnings) {
                $warnings[] = $m;
            },
        ]);
        $instances = $registry->instances('catalog');
        check_same('10.0.0.1:1 10.0.0.2:2', addresses($instances));
        check_same('compact', $instances[1]->protocol);
        check_same('framed', $instances[1]->transport);
        check_same(2, count($warnings), implode("\n", $warnings));
        check(str_contains($warnings[0] . $warnings[1], 'bad_type'));
        check(str_contains($warnings[0] . $warnings[1], 'key_mismatch'));
    } finally {
        $stop();
    }
});

test('registry: the list is cached for cache_ttl, in the process and in a file; stale beats empty', function () {
    $dir = sys_get_temp_dir() . '/soa-php-test-' . bin2hex(random_bytes(4));
    mkdir($dir);
    [$endpoint, $state, $stop] = fake_etcd(['/t/services/catalog/10.0.0.1:1' => value('10.0.0.1', 1)]);
    $options = ['endpoints' => [$endpoint], 'prefix' => '/t', 'cache_dir' => $dir, 'cache_ttl' => 0.5,
        'logger' => function () {
        }];
    try {
        $registry = new Registry($options);
        check_same('10.0.0.1:1', addresses($registry->instances('catalog')));
        file_put_contents($state, json_encode(['/t/services/catalog/10.0.0.2:2' => value('10.0.0.2', 2)]));
        check_same('10.0.0.1:1', addresses($registry->instances('catalog')), 'in-process cache:');
        check_same('10.0.0.1:1', addresses((new Registry($options))->instances('catalog')), 'file cache:');
        usleep(600000);
        check_same('10.0.0.2:2', addresses($registry->instances('catalog')), 'after the ttl:');
    } finally {
        $stop();
    }
    usleep(600000);
    $stale = new Registry($options);
    check_same('10.0.0.2:2', addresses($stale->instances('catalog')), 'etcd down, stale list:');
    array_map('unlink', glob("$dir/*"));
    rmdir($dir);
    check_throws(DiscoveryError::class, fn () => (new Registry($options))->instances('catalog'));
});
