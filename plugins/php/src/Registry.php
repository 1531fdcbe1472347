<?php

namespace Soa;

use Soa\Cache\ApcuCache;
use Soa\Cache\Cache;
use Soa\Cache\FileCache;
use Soa\Cache\NoCache;

/**
 * Reads soa registrations from etcd. A PHP request is short-lived, so instead of a watch each
 * service's listing is kept for cache_ttl seconds: in this object, and between requests in APCu
 * when it is enabled, otherwise in a file in a private folder (Cache\FileCache). An entry whose
 * `at` is in the future or older than stale_ttl is never used, wherever it comes from. When etcd
 * cannot be read, the last listing younger than stale_ttl is used (stale beats empty).
 *
 * Options:
 * - endpoints (['127.0.0.1:2379']), prefix ('/soa'), timeout (seconds per etcd request, 2.0);
 * - user, password, tls => [ca, cert, key, server_name]: etcd authentication and TLS;
 * - cache_ttl (seconds a listing is used without asking etcd, 2.0);
 * - stale_ttl (seconds a listing may serve while etcd is unreachable, 30.0; at least cache_ttl);
 * - cache: 'auto' (APCu if enabled, else a file), 'apcu', 'file', 'none', or a Cache\Cache;
 * - cache_dir: the file cache's private folder (default {sys_get_temp_dir()}/soa-php-{uid});
 * - cluster: names the etcd cluster in cache keys (default: the endpoints, joined); registries
 *   that reach one cluster through different endpoint lists share a cache when they share it;
 * - logger: a callable taking one message (default error_log).
 *
 * Not for concurrent use from several threads (PHP runs one request per process).
 */
final class Registry
{
    private EtcdGateway $gateway;
    private string $prefix;
    private float $ttl;
    private float $staleTtl;
    private Cache $cache;
    /** @var callable */
    private $logger;
    /** @var array<string, array{at: float, instances: Instance[]}> */
    private array $memo = [];
    private string $scope;

    public function __construct(array $options = [])
    {
        $endpoints = $options['endpoints'] ?? ['127.0.0.1:2379'];
        $this->gateway = new EtcdGateway($endpoints, $options);
        $this->prefix = $options['prefix'] ?? '/soa';
        $this->ttl = (float) ($options['cache_ttl'] ?? 2.0);
        $this->staleTtl = max($this->ttl, (float) ($options['stale_ttl'] ?? 30.0));
        $this->logger = $options['logger'] ?? static function (string $message): void {
            error_log($message);
        };
        $this->cache = self::cache($options['cache'] ?? 'auto', $options['cache_dir'] ?? null, $this->logger);
        $cluster = $options['cluster'] ?? implode(',', $endpoints);
        $this->scope = $cluster . '|' . $this->prefix . '|' . ($options['user'] ?? '');
    }

    public function prefix(): string
    {
        return $this->prefix;
    }

    public function gateway(): EtcdGateway
    {
        return $this->gateway;
    }

    public function cacheStore(): Cache
    {
        return $this->cache;
    }

    /**
     * The live instances of $service (invalid values skipped with a warning, leaving ones
     * dropped), in key order. Throws DiscoveryError when etcd is unreachable and no listing
     * younger than stale_ttl is known.
     *
     * @return Instance[]
     */
    public function instances(string $service): array
    {
        $now = microtime(true);
        $memo = $this->memo[$service] ?? null;
        if ($memo !== null && $this->age($memo['at'], $now) < $this->ttl) {
            return $memo['instances'];
        }
        $key = $this->scope . '|' . $service;
        $cached = $memo;
        $shared = $this->fromCache($key, $now); // another request may have listed it since
        if ($shared !== null && ($cached === null || $shared['at'] > $cached['at'])) {
            $cached = $shared;
        }
        if ($cached !== null && $this->age($cached['at'], $now) < $this->ttl) {
            $this->memo[$service] = $cached;
            return $cached['instances'];
        }
        try {
            $kvs = $this->gateway->range(Instance::servicePrefix($this->prefix, $service))['kvs'];
        } catch (DiscoveryError $e) {
            if ($cached === null || $this->age($cached['at'], $now) > $this->staleTtl) {
                throw $e;
            }
            ($this->logger)("soa: {$e->getMessage()}; using the list of $service from "
                . round($now - $cached['at'], 1) . ' s ago');
            return $cached['instances'];
        }
        $pairs = array_map(fn ($kv) => [$kv['key'], $kv['value']], $kvs);
        $this->memo[$service] = ['at' => $now, 'instances' => $this->parse($pairs, true)];
        $this->cache->put($key, ['at' => $now, 'kvs' => $pairs], $this->staleTtl);
        return $this->memo[$service]['instances'];
    }

    /** Lists $service in etcd now, bypassing every cache. @return Instance[] */
    public function list(string $service): array
    {
        $kvs = $this->gateway->range(Instance::servicePrefix($this->prefix, $service))['kvs'];
        return $this->parse(array_map(fn ($kv) => [$kv['key'], $kv['value']], $kvs), true);
    }

    /** Seconds since $at; INF for an $at in the future (never trusted) or not a number. */
    private function age(mixed $at, float $now): float
    {
        if ((!is_float($at) && !is_int($at)) || $at > $now) {
            return INF;
        }
        return $now - $at;
    }

    /** A cache entry younger than stale_ttl, parsed; null otherwise. */
    private function fromCache(string $key, float $now): ?array
    {
        $entry = $this->cache->get($key);
        if ($entry === null || !is_array($entry['kvs'] ?? null)) {
            return null;
        }
        if ($this->age($entry['at'] ?? null, $now) > $this->staleTtl) {
            return null;
        }
        $pairs = array_filter($entry['kvs'], fn ($kv) => is_array($kv) && count($kv) === 2
            && is_string($kv[0] ?? null) && is_string($kv[1] ?? null));
        return ['at' => (float) $entry['at'], 'instances' => $this->parse(array_values($pairs), false)];
    }

    /** @param list<array{0: string, 1: string}> $pairs @return Instance[] */
    private function parse(array $pairs, bool $warn): array
    {
        $out = [];
        foreach ($pairs as [$key, $value]) {
            try {
                $instance = Instance::parse($value, $key, $this->prefix);
            } catch (InvalidInstance $e) {
                if ($warn) {
                    ($this->logger)("soa: skipping registry value $key: {$e->getMessage()}");
                }
                continue;
            }
            if (!$instance->leaving) {
                $out[$instance->address()] = $instance;
            }
        }
        ksort($out, SORT_STRING);
        return array_values($out);
    }

    private static function cache(mixed $choice, ?string $dir, callable $logger): Cache
    {
        if ($choice instanceof Cache) {
            return $choice;
        }
        return match ($choice) {
            'auto' => ApcuCache::available() ? new ApcuCache() : new FileCache($dir, $logger),
            'apcu' => ApcuCache::available() ? new ApcuCache()
                : throw new ConfigError('cache: apcu is not enabled (install php-apcu; for the CLI set apc.enable_cli=1)'),
            'file' => new FileCache($dir, $logger),
            'none', null => new NoCache(),
            default => throw new ConfigError("cache: expected auto, apcu, file or none, got \"$choice\""),
        };
    }
}
