<?php

namespace Soa\Tests;

use PHPUnit\Framework\TestCase;
use Soa\Cache\ApcuCache;
use Soa\Cache\Cache;
use Soa\Cache\FileCache;
use Soa\DiscoveryError;
use Soa\Instance;
use Soa\Registry;

/**
 * The Registry against the run's real etcd: listing, failover between endpoints, invalid values,
 * the TTL-bounded cache in both stores, and cache entries it must not trust.
 */
final class RegistryTest extends TestCase
{
    private string $prefix;
    private array $log = [];
    private array $cleanup = [];

    protected function setUp(): void
    {
        $this->prefix = Support::prefix();
    }

    protected function tearDown(): void
    {
        foreach ($this->cleanup as $fn) {
            $fn();
        }
    }

    private function put(string $address, string $value, string $service = 'catalog'): void
    {
        Support::gateway()->put("{$this->prefix}/services/$service/$address", $value);
    }

    private function del(string $address, string $service = 'catalog'): void
    {
        Support::gateway()->delete("{$this->prefix}/services/$service/$address");
    }

    private function registry(array $options = []): Registry
    {
        return new Registry($options + [
            'endpoints' => [Support::etcdEndpoint()], 'prefix' => $this->prefix, 'cache' => 'none', 'cluster' => 'test',
            'logger' => function (string $m) {
                $this->log[] = $m;
            },
        ]);
    }

    private static function addresses(array $instances): string
    {
        return implode(' ', array_map(fn (Instance $i) => $i->address(), $instances));
    }

    private function fileCache(): FileCache
    {
        [$dir, $remove] = Support::tempDir();
        $this->cleanup[] = $remove;
        return new FileCache("$dir/cache");
    }

    public function testListsFailsOverSkipsInvalidAndDropsLeaving(): void
    {
        $this->put('10.0.0.1:1', Support::value('catalog', '10.0.0.1', 1));
        $this->put('10.0.0.2:2', Support::value('catalog', '10.0.0.2', 2, ['protocol' => 'compact', 'transport' => 'framed', 'theader' => true, 'id' => 'i-2']));
        $this->put('10.0.0.3:3', '{"service":"catalog","host":"10.0.0.3","port":"3"}');
        $this->put('10.0.0.4:4', Support::value('catalog', '10.0.0.4', 4, ['leaving' => true]));
        $this->put('10.0.0.5:6', Support::value('catalog', '10.0.0.5', 5));
        $this->put('10.0.0.9:9', Support::value('other', '10.0.0.9', 9), 'other');
        $registry = $this->registry(['endpoints' => ['127.0.0.1:' . Support::freePort(), 'http://' . Support::etcdEndpoint()]]);
        $instances = $registry->instances('catalog');
        $this->assertSame('10.0.0.1:1 10.0.0.2:2', self::addresses($instances));
        $this->assertSame(['compact', 'framed', true, 'i-2'], [$instances[1]->protocol, $instances[1]->transport, $instances[1]->theader, $instances[1]->id]);
        $this->assertCount(2, $this->log, implode("\n", $this->log));
        $this->assertStringContainsString('bad_type', implode("\n", $this->log));
        $this->assertStringContainsString('key_mismatch', implode("\n", $this->log));
    }

    public function testEtcdUnreachableAndNothingCachedIsADiscoveryError(): void
    {
        $registry = $this->registry(['endpoints' => ['127.0.0.1:' . Support::freePort()], 'timeout' => 0.5]);
        $this->expectException(DiscoveryError::class);
        $this->expectExceptionMessage('etcd unreachable');
        $registry->instances('catalog');
    }

    public static function stores(): array
    {
        return ['apcu' => ['apcu'], 'file' => ['file']];
    }

    private function store(string $kind): Cache
    {
        return $kind === 'apcu' ? new ApcuCache() : $this->fileCache();
    }

    /** @dataProvider stores */
    public function testTheListingIsCachedForCacheTtlThenListedAgain(string $kind): void
    {
        $cache = $this->store($kind);
        $this->put('10.0.0.1:1', Support::value('catalog', '10.0.0.1', 1));
        $options = ['cache' => $cache, 'cache_ttl' => 0.4];
        $registry = $this->registry($options);
        $this->assertSame('10.0.0.1:1', self::addresses($registry->instances('catalog')));
        $this->del('10.0.0.1:1');
        $this->put('10.0.0.2:2', Support::value('catalog', '10.0.0.2', 2));
        $this->assertSame('10.0.0.1:1', self::addresses($registry->instances('catalog')), 'in the object');
        $this->assertSame('10.0.0.1:1', self::addresses($this->registry($options)->instances('catalog')), "in $kind");
        usleep(450000);
        $this->assertSame('10.0.0.2:2', self::addresses($registry->instances('catalog')), 'after cache_ttl');
        $this->assertSame('10.0.0.2:2', self::addresses($this->registry($options)->instances('catalog')), "$kind refreshed");
    }

    /** @dataProvider stores */
    public function testWhileEtcdIsDownAListingYoungerThanStaleTtlServes(string $kind): void
    {
        $cache = $this->store($kind);
        $this->put('10.0.0.1:1', Support::value('catalog', '10.0.0.1', 1));
        $this->registry(['cache' => $cache, 'cache_ttl' => 0.1])->instances('catalog');
        usleep(150000);
        $down = ['cache' => $cache, 'cache_ttl' => 0.1, 'stale_ttl' => 5, 'timeout' => 0.5,
            'endpoints' => ['127.0.0.1:' . Support::freePort()]];
        $this->assertSame('10.0.0.1:1', self::addresses($this->registry($down)->instances('catalog')));
        $this->assertStringContainsString('using the list of catalog from', implode("\n", $this->log));
        $this->expectException(DiscoveryError::class); // older than stale_ttl: not trusted
        $this->registry(['stale_ttl' => 0.1] + $down)->instances('catalog');
    }

    /** The keys a Registry of these options uses, found by letting it write once. */
    private function plant(Cache $cache, float $at, array $kvs): Registry
    {
        $this->put('10.0.0.1:1', Support::value('catalog', '10.0.0.1', 1));
        $spy = new class($cache) implements Cache {
            public ?string $key = null;

            public function __construct(private Cache $inner)
            {
            }

            public function get(string $key): ?array
            {
                $this->key = $key;
                return $this->inner->get($key);
            }

            public function put(string $key, array $entry, float $ttl): void
            {
                $this->key = $key;
                $this->inner->put($key, $entry, $ttl);
            }

            public function describe(): string
            {
                return 'spy';
            }
        };
        $this->registry(['cache' => $spy])->instances('catalog');
        $cache->put($spy->key, ['at' => $at, 'kvs' => $kvs], 60);
        return $this->registry(['cache' => $cache, 'cache_ttl' => 2, 'stale_ttl' => 10]);
    }

    private function evil(): array
    {
        $key = "{$this->prefix}/services/catalog/6.6.6.6:666";
        return [[$key, Support::value('catalog', '6.6.6.6', 666)]];
    }

    /** @dataProvider stores */
    public function testAnEntryFromTheFutureIsIgnored(string $kind): void
    {
        $registry = $this->plant($this->store($kind), microtime(true) + 3600, $this->evil());
        $this->assertSame('10.0.0.1:1', self::addresses($registry->instances('catalog')));
    }

    /** @dataProvider stores */
    public function testAnEntryOlderThanStaleTtlIsIgnoredEvenWithEtcdDown(string $kind): void
    {
        $cache = $this->store($kind);
        $registry = $this->plant($cache, microtime(true) - 11, $this->evil());
        $this->assertSame('10.0.0.1:1', self::addresses($registry->instances('catalog')), 'etcd up');
        $registry = $this->plant($cache, microtime(true) - 11, $this->evil());
        $down = new Registry(['endpoints' => ['127.0.0.1:' . Support::freePort()], 'prefix' => $this->prefix, 'cluster' => 'test',
            'cache' => $cache, 'stale_ttl' => 10, 'timeout' => 0.5, 'logger' => fn () => null]);
        $this->expectException(DiscoveryError::class);
        $down->instances('catalog');
    }

    /** @dataProvider stores */
    public function testAFreshEntryIsUsedAndItsValuesAreCheckedAgain(string $kind): void
    {
        $key = "{$this->prefix}/services/catalog/10.0.0.7:7";
        $kvs = [[$key, Support::value('catalog', '10.0.0.7', 7)], [$key . 'x', '{"service":"catalog"}'], 'junk'];
        $registry = $this->plant($this->store($kind), microtime(true) - 0.5, $kvs);
        $this->assertSame('10.0.0.7:7', self::addresses($registry->instances('catalog')));
    }

    public function testAPlantedFileInAForeignFolderIsNeverRead(): void
    {
        [$dir, $remove] = Support::tempDir();
        $this->cleanup[] = $remove;
        chmod($dir, 0777); // a shared, world-writable folder
        $cache = new FileCache($dir, fn () => null);
        $registry = $this->plant($cache, microtime(true) - 0.5, $this->evil());
        $this->assertSame('10.0.0.1:1', self::addresses($registry->instances('catalog')));
        $this->assertSame([], glob("$dir/*.json"), 'nothing written there either');
    }
}
