<?php

namespace Soa\Tests;

use PHPUnit\Framework\TestCase;
use Soa\Client;
use Soa\ConfigError;
use Soa\Instance;
use Soa\NoInstanceAvailable;
use Soa\RetryError;
use Soa\RpcTimeout;
use Soa\Tests\Fixtures\TinyClient;
use Soa\Tests\Fixtures\TinyServer;
use Soa\TransportError;

/**
 * The client's call path against small forked Thrift servers (TinyServer): failover, retries of
 * idempotent methods only, the deadline, pooled connections, the IDL policy, THeader metadata and
 * the servers' refusals. tests/test_plugin_php.py repeats the important ones against soa servers.
 */
final class ClientTest extends TestCase
{
    private array $stops = [];
    private array $log = [];

    protected function tearDown(): void
    {
        foreach ($this->stops as $stop) {
            $stop();
        }
    }

    /** A TinyServer with $behaviour; returns its Instance. */
    private function server(string $behaviour = 'answer', array $fields = [], ?string $log = null): Instance
    {
        [$port, $stop] = Support::fork(fn ($conn, $port) => TinyServer::serve($conn, $behaviour, $port, $log));
        $this->stops[] = $stop;
        return Instance::parse(Support::value('tiny', '127.0.0.1', $port, $fields));
    }

    private static function dead(array $fields = []): Instance
    {
        return Instance::parse(Support::value('tiny', '127.0.0.1', Support::freePort(), $fields));
    }

    private function client(array $instances, array $options = []): Client
    {
        return new Client($instances, 'tiny', TinyClient::class, $options + [
            'balancer' => 'round_robin', 'persist' => false,
            'logger' => function (string $m) {
                $this->log[] = $m;
            },
        ]);
    }

    public function testARefusedConnectionGoesToTheNextInstance(): void
    {
        $alive = $this->server();
        $refused = [];
        $count = function (Instance $i) use (&$refused) {
            $refused[] = $i->port;
        };
        $client = $this->client([self::dead(), self::dead(), $alive], ['on_connect_error' => $count]);
        for ($n = 0; $n < 20; $n++) {
            $this->assertSame("hello x from {$alive->port}", $client->hello('x'));
        }
        $this->assertCount(6, $refused, 'each dead one is refused eject_after (3) times, then ejected');
        $this->assertSame($alive->port, $client->lastInstance()->port);
        $refused = [];
        $eager = $this->client([self::dead(), self::dead(), $alive], ['on_connect_error' => $count, 'eject_after' => 1]);
        for ($n = 0; $n < 20; $n++) {
            $eager->hello('x');
        }
        $this->assertCount(2, $refused, 'eject_after 1: each dead one is tried once');
    }

    public function testEveryInstanceRefusingIsNoInstanceAvailableNamingThem(): void
    {
        $dead = [self::dead(), self::dead()];
        try {
            $this->client($dead)->hello('x');
            $this->fail('no error');
        } catch (NoInstanceAvailable $e) {
            $this->assertEqualsCanonicalizing(array_map(fn ($i) => $i->address(), $dead), $e->tried);
            $this->assertStringContainsString('no instance of tiny reachable', $e->getMessage());
        }
    }

    public function testNothingUsableIsNoInstanceAvailableWithoutConnecting(): void
    {
        foreach ([[], [self::dead(['weight' => 0])]] as $set) {
            try {
                $this->client($set)->hello('x');
                $this->fail('no error');
            } catch (NoInstanceAvailable $e) {
                $this->assertSame([], $e->tried);
            }
        }
    }

    public function testAfterSendingOnlyIdempotentMethodsAreRetried(): void
    {
        $closing = $this->server('close');
        $alive = $this->server();
        try {
            $this->client([$closing, $alive], ['balancer' => new \Soa\Balancer\RoundRobin(0)])->hello('x');
            $this->fail('a call that was sent was retried');
        } catch (TransportError $e) {
            $this->assertTrue($e->sent);
            $this->assertStringContainsString($closing->address(), $e->getMessage());
        }
        $client = $this->client([$closing, $alive], ['balancer' => new \Soa\Balancer\RoundRobin(0), 'idempotent' => ['hello']]);
        $this->assertSame("hello x from {$alive->port}", $client->hello('x'));
        $both = $this->client([$closing], ['idempotent' => ['hello'], 'retries' => 2]);
        try {
            $both->hello('x');
            $this->fail('no error');
        } catch (RetryError $e) {
            $this->assertCount(3, $e->attempts, 'the first attempt and two retries');
        }
    }

    public function testTheDeadlineCoversTheWholeCallRetriesIncluded(): void
    {
        $hang = [$this->server('hang'), $this->server('hang')];
        $client = $this->client($hang, ['timeout_ms' => 300, 'idempotent' => ['hello']]);
        $start = microtime(true);
        try {
            $client->hello('x');
            $this->fail('no timeout');
        } catch (RpcTimeout $e) {
            $this->assertTrue($e->sent);
        }
        $elapsed = microtime(true) - $start;
        $this->assertGreaterThan(0.29, $elapsed);
        $this->assertLessThan(0.6, $elapsed);
        $start = microtime(true);
        $this->expectException(RpcTimeout::class);
        try {
            $client->call('hello', ['x'], ['timeout_ms' => 100]);
        } finally {
            $this->assertLessThan(0.4, microtime(true) - $start);
        }
    }

    public function testConnectionsAreReusedAndDiscardedAfterAnError(): void
    {
        $a = $this->server();
        $client = $this->client([$a]);
        for ($n = 0; $n < 5; $n++) {
            $client->hello("n$n");
        }
        $this->assertSame(1, $client->pool()->opened());
        $this->assertSame([$a->address()], $client->pool()->idleAddresses());
        $closing = $this->server('close');
        $mixed = $this->client([$closing]);
        for ($n = 0; $n < 2; $n++) {
            try {
                $mixed->hello('x');
            } catch (TransportError) {
            }
        }
        $this->assertSame(2, $mixed->pool()->opened(), 'a connection that failed was used again');
        $this->assertSame([], $mixed->pool()->idleAddresses());
    }

    public function testAnInstanceThatLeavesHasItsConnectionClosed(): void
    {
        $a = $this->server();
        $b = $this->server();
        // the same client seeing a smaller set: from a Registry in practice; here its list shrinks
        $shrinking = $this->client([$a, $b]);
        $shrinking->hello('1');
        $shrinking->hello('2');
        $this->assertEqualsCanonicalizing([$a->address(), $b->address()], $shrinking->pool()->idleAddresses());
        $ref = new \ReflectionProperty(Client::class, 'source');
        $ref->setValue($shrinking, [$a]);
        $shrinking->hello('3');
        $this->assertSame([$a->address()], $shrinking->pool()->idleAddresses());
    }

    public function testIdlMismatchWarnsOnceOrExcludes(): void
    {
        $a = $this->server('answer', ['idl_hash' => 'sha256:aaaa']);
        $client = $this->client([$a], ['idl_hash' => 'sha256:bbbb']);
        $client->hello('1');
        $client->hello('2');
        $this->assertCount(1, $this->log);
        $this->assertStringContainsString('serves IDL sha256:aaaa but this client has sha256:bbbb; using it anyway', $this->log[0]);
        $excluding = $this->client([$a], ['idl_hash' => 'sha256:bbbb', 'idl_mismatch' => 'exclude']);
        try {
            $excluding->hello('x');
            $this->fail('an excluded instance was called');
        } catch (NoInstanceAvailable $e) {
            $this->assertStringContainsString('IDL mismatch', $e->getMessage());
        }
        $same = $this->client([$a], ['idl_hash' => 'sha256:aaaa', 'idl_mismatch' => 'exclude']);
        $this->assertSame("hello x from {$a->port}", $same->hello('x'));
        $unknown = $this->client([$this->server()], ['idl_hash' => 'sha256:bbbb', 'idl_mismatch' => 'exclude']);
        $unknown->hello('x'); // an instance without idl_hash is used
    }

    public function testTheGeneratedSoaIdlClassGivesTheHash(): void
    {
        require_once __DIR__ . '/Fixtures/GeneratedIdl.php';
        $a = $this->server('answer', ['idl_hash' => 'sha256:0123456789abcdef']);
        $quiet = ['idl_mismatch' => 'exclude', 'persist' => false, 'logger' => fn () => null];
        $client = new Client([$a], 'tiny', \SoaGenerated\Tiny\TinyClient::class, $quiet);
        $this->assertStringStartsWith('hello x', $client->hello('x'));
        $other = $this->server('answer', ['idl_hash' => 'sha256:ffffffffffffffff']);
        $this->expectException(NoInstanceAvailable::class);
        (new Client([$other], 'tiny', \SoaGenerated\Tiny\TinyClient::class, $quiet))->hello('x');
    }

    public function testTHeaderCarriesDeadlineServiceAndInstance(): void
    {
        $log = tempnam(sys_get_temp_dir(), 'soa-headers-');
        $a = $this->server('answer', ['theader' => true, 'id' => 'inst-1'], $log);
        $client = $this->client([$a], ['timeout_ms' => 800, 'caller' => 'web']);
        $this->assertSame("hello x from {$a->port}", $client->hello('x'));
        $headers = json_decode(trim(file_get_contents($log)), true);
        unlink($log);
        $this->assertSame('tiny', $headers['soa-service']);
        $this->assertSame('inst-1', $headers['soa-instance']);
        $this->assertSame('web', $headers['soa-caller']);
        $ms = (int) $headers['soa-deadline-ms'];
        $this->assertGreaterThan(300, $ms); // the connect counts against it; the machine may be slow
        $this->assertLessThanOrEqual(800, $ms);
        $this->assertMatchesRegularExpression('/^[1-9][0-9]*$/', $headers['soa-deadline-ms']);
    }

    public function testWithoutTheaderNoMetadataIsSent(): void
    {
        $log = tempnam(sys_get_temp_dir(), 'soa-headers-');
        $a = $this->server('answer', ['theader' => false, 'id' => 'inst-1'], $log);
        $this->assertSame("hello x from {$a->port}", $this->client([$a])->hello('x'));
        $this->assertSame('', file_get_contents($log), 'a THeader frame went to a plain instance');
        unlink($log);
    }

    public function testWrongTargetIsRetriedElsewhereAndTheInstanceDropped(): void
    {
        $wrong = $this->server('wrong-target', ['theader' => true, 'id' => 'old']);
        $right = $this->server('answer', ['theader' => true, 'id' => 'new']);
        $client = $this->client([$wrong, $right], ['balancer' => new \Soa\Balancer\RoundRobin(0)]);
        for ($n = 0; $n < 4; $n++) {
            $this->assertSame("hello x from {$right->port}", $client->hello('x'), 'not idempotent, still retried');
        }
        $this->assertSame(1, substr_count(implode("\n", $this->log), 'now serves another service or instance'));
    }

    public function testEachCallOnAConnectionWaitsForItsOwnDeadline(): void
    {
        // the kernel's timeout on a reused socket is shortened for a shorter deadline...
        $client = $this->client([$this->server('hang-after-first', ['theader' => true])], ['timeout_ms' => 5000]);
        $this->assertStringStartsWith('hello a from', $client->hello('a'));
        $start = microtime(true);
        try {
            $client->call('hello', ['b'], ['timeout_ms' => 150]);
            $this->fail('no timeout');
        } catch (RpcTimeout $e) {
            $this->assertTrue($e->sent);
            $this->assertFalse($e->refused);
        }
        $elapsed = microtime(true) - $start;
        $this->assertGreaterThan(0.149, $elapsed);
        $this->assertLessThan(0.5, $elapsed);
        $this->assertSame(1, $client->pool()->opened(), 'both calls on the first connection');
        // ...and a short one left from the last call does not cut a longer deadline short
        $client = $this->client([$this->server('slow-after-first', ['theader' => true])], ['timeout_ms' => 100]);
        $this->assertStringStartsWith('hello a from', $client->hello('a'));
        $start = microtime(true);
        $this->assertStringStartsWith('hello b from', $client->call('hello', ['b'], ['timeout_ms' => 3000]));
        $this->assertGreaterThan(0.39, microtime(true) - $start);
        $this->assertSame(1, $client->pool()->opened());
    }

    public function testLateIsADeadlineErrorNotRetried(): void
    {
        $late = $this->server('late', ['theader' => true]);
        $other = $this->server('answer', ['theader' => true]);
        $client = $this->client([$late, $other], ['balancer' => new \Soa\Balancer\RoundRobin(0), 'idempotent' => ['hello']]);
        try {
            $client->hello('x');
            $this->fail('no error');
        } catch (RpcTimeout $e) {
            $this->assertTrue($e->refused);
            $this->assertStringContainsString('refused the call unexecuted', $e->getMessage());
        }
        $this->assertSame(1, $client->pool()->opened());
        $this->assertSame("hello x from {$other->port}", $client->hello('x'));
    }

    public function testAConnectionThatCarriedARefusalServesTheNextCallCleanly(): void
    {
        $server = $this->server('late-once', ['theader' => true]);
        $client = $this->client([$server]);
        try {
            $client->hello('first');
            $this->fail('no error');
        } catch (RpcTimeout $e) {
            $this->assertTrue($e->refused);
        }
        $this->assertSame("hello second from {$server->port}", $client->hello('second'));
        $this->assertSame(1, $client->pool()->opened(), 'the refusal was read whole: the connection stays');
    }

    public function testBadOptionsAreConfigErrors(): void
    {
        foreach ([['timeout_ms' => 0], ['balancer' => 'nope'], ['idl_mismatch' => 'ignore'], ['hash_key' => 1.5]] as $bad) {
            try {
                $this->client([], $bad);
                $this->fail('accepted ' . json_encode($bad));
            } catch (ConfigError $e) {
                $this->assertStringContainsString(array_key_first($bad), $e->getMessage());
            }
        }
    }

    public function testConsistentHashByArgumentName(): void
    {
        $servers = [$this->server(), $this->server(), $this->server()];
        $client = $this->client($servers, ['balancer' => 'consistent_hash', 'hash_key' => 'name']);
        $ring = new \Soa\Balancer\ConsistentHash();
        foreach (['u1', 'u2', 'u3', 'u4', 'u5', 'u6'] as $key) {
            $want = $ring->pick($servers, $key)->port;
            $this->assertSame("hello $key from $want", $client->hello($key));
            $this->assertSame("hello $key from $want", $client->hello($key));
        }
    }
}
