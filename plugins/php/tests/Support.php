<?php

namespace Soa\Tests;

use PHPUnit\Framework\Assert;
use Soa\EtcdGateway;

/** Helpers shared by the tests: ports, the real etcd of the run, small forked servers. */
final class Support
{
    /** A free 127.0.0.1 port (nothing listens on it once returned). */
    public static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $port = self::portOf($server);
        fclose($server);
        return $port;
    }

    public static function portOf($server): int
    {
        return (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
    }

    /** The real etcd the run started (SOA_TEST_ETCD); fails loudly without one. */
    public static function etcdEndpoint(): string
    {
        $endpoint = getenv('SOA_TEST_ETCD');
        if (!$endpoint) {
            Assert::fail('SOA_TEST_ETCD is not set: run these tests through tests/test_plugin_php.py, which starts etcd');
        }
        return $endpoint;
    }

    /** A key prefix no other test uses. */
    public static function prefix(): string
    {
        return (getenv('SOA_TEST_PREFIX') ?: '/soa-php-test') . '/' . bin2hex(random_bytes(6));
    }

    public static function gateway(): EtcdGateway
    {
        return new EtcdGateway([self::etcdEndpoint()]);
    }

    /** A registry value for $service at 127.0.0.1:$port with $extra fields. */
    public static function value(string $service, string $host, int $port, array $extra = []): string
    {
        return json_encode(['service' => $service, 'host' => $host, 'port' => $port] + $extra);
    }

    /**
     * A forked server on a fresh port: each accepted connection is served by $serve($conn,
     * $port) in a process of its own. Returns [port, stop]; stop() kills the whole group.
     */
    public static function fork(callable $serve): array
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $port = self::portOf($server);
        $pid = pcntl_fork();
        if ($pid === 0) {
            posix_setpgid(0, 0);
            while (true) {
                $conn = @stream_socket_accept($server, 60);
                if ($conn === false) {
                    break;
                }
                if (pcntl_fork() === 0) {
                    fclose($server);
                    $serve($conn, $port);
                    @fclose($conn);
                    posix_kill(posix_getpid(), SIGKILL); // no shutdown functions of PHPUnit's
                }
                fclose($conn);
                while (pcntl_waitpid(-1, $status, WNOHANG) > 0) {
                }
            }
            posix_kill(posix_getpid(), SIGKILL);
        }
        @posix_setpgid($pid, $pid); // in both, so stop() works whoever runs first
        fclose($server);
        return [$port, static function () use ($pid): void {
            posix_kill(-$pid, SIGKILL);
            pcntl_waitpid($pid, $status);
        }];
    }

    /** A private temporary folder (0700), removed with its files by the returned closure. */
    public static function tempDir(): array
    {
        $dir = sys_get_temp_dir() . '/soa-php-test-' . bin2hex(random_bytes(6));
        mkdir($dir, 0700);
        return [$dir, static function () use ($dir): void {
            exec('rm -rf ' . escapeshellarg($dir));
        }];
    }
}
