<?php

namespace Soa;

/**
 * Reads soa registrations from etcd. PHP requests are short-lived, so instead of a watch each
 * service's list is cached for cache_ttl seconds, in the process and (unless cache_dir is null)
 * in a file shared by the requests of one machine. When etcd cannot be read, the last list
 * cached is used however old (stale beats empty).
 *
 * Options: endpoints (default ['127.0.0.1:2379']), prefix ('/soa'), timeout (seconds per
 * request, 2.0), cache_ttl (seconds, 2.0), cache_dir (sys_get_temp_dir()), logger (a callable
 * taking one message; default error_log).
 */
final class Registry
{
    private EtcdGateway $gateway;
    private string $prefix;
    private float $ttl;
    private ?string $cacheDir;
    /** @var callable */
    private $logger;
    /** @var array<string, array{at: float, instances: Instance[]}> */
    private array $memo = [];
    private string $scope;

    public function __construct(array $options = [])
    {
        $endpoints = $options['endpoints'] ?? ['127.0.0.1:2379'];
        $this->gateway = new EtcdGateway($endpoints, (float) ($options['timeout'] ?? 2.0));
        $this->prefix = $options['prefix'] ?? '/soa';
        $this->ttl = (float) ($options['cache_ttl'] ?? 2.0);
        $this->cacheDir = array_key_exists('cache_dir', $options) ? $options['cache_dir'] : sys_get_temp_dir();
        $this->logger = $options['logger'] ?? static function (string $message): void {
            error_log($message);
        };
        $this->scope = implode(',', $endpoints) . '|' . $this->prefix;
    }

    public function prefix(): string
    {
        return $this->prefix;
    }

    /**
     * The live instances of $service (invalid values skipped with a warning, leaving ones
     * dropped), sorted by address. Throws DiscoveryError when etcd is unreachable and nothing
     * was ever cached.
     *
     * @return Instance[]
     */
    public function instances(string $service): array
    {
        $now = microtime(true);
        $cached = $this->memo[$service] ?? $this->readFile($service);
        if ($cached !== null && $now - $cached['at'] < $this->ttl) {
            $this->memo[$service] = $cached;
            return $cached['instances'];
        }
        try {
            $fresh = ['at' => $now, 'instances' => $this->list($service)];
        } catch (DiscoveryError $e) {
            if ($cached === null) {
                throw $e;
            }
            ($this->logger)("soa: {$e->getMessage()}; using the list of $service cached "
                . round($now - $cached['at'], 1) . ' s ago');
            return $cached['instances'];
        }
        $this->memo[$service] = $fresh;
        $this->writeFile($service, $fresh);
        return $fresh['instances'];
    }

    /** Lists $service in etcd now, bypassing the cache. @return Instance[] */
    public function list(string $service): array
    {
        $out = [];
        foreach ($this->gateway->range(Instance::servicePrefix($this->prefix, $service))['kvs'] as $kv) {
            try {
                $instance = Instance::parse($kv['value'], $kv['key'], $this->prefix);
            } catch (InvalidInstance $e) {
                ($this->logger)("soa: skipping registry value {$kv['key']}: {$e->getMessage()}");
                continue;
            }
            if (!$instance->leaving) {
                $out[$instance->address()] = $instance;
            }
        }
        ksort($out, SORT_STRING);
        return array_values($out);
    }

    private function cacheFile(string $service): ?string
    {
        if ($this->cacheDir === null) {
            return null;
        }
        return $this->cacheDir . '/soa-registry-' . sha1($this->scope . '|' . $service) . '.json';
    }

    private function readFile(string $service): ?array
    {
        $file = $this->cacheFile($service);
        if ($file === null || !is_file($file)) {
            return null;
        }
        $data = json_decode((string) @file_get_contents($file), true);
        if (!is_array($data) || !isset($data['at'], $data['instances'])) {
            return null;
        }
        return ['at' => (float) $data['at'], 'instances' => array_map([Instance::class, 'fromArray'], $data['instances'])];
    }

    private function writeFile(string $service, array $entry): void
    {
        $file = $this->cacheFile($service);
        if ($file === null) {
            return;
        }
        $data = ['at' => $entry['at'], 'instances' => array_map(fn (Instance $i) => $i->toArray(), $entry['instances'])];
        $tmp = @tempnam($this->cacheDir, 'soa-registry-');
        if ($tmp !== false && @file_put_contents($tmp, json_encode($data)) !== false && @rename($tmp, $file)) {
            return;
        }
        if ($tmp !== false) {
            @unlink($tmp);
        }
    }
}
