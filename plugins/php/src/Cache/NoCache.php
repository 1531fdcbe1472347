<?php

namespace Soa\Cache;

/** Nothing is kept between requests: every Registry lists etcd on first use. */
final class NoCache implements Cache
{
    public function get(string $key): ?array
    {
        return null;
    }

    public function put(string $key, array $entry, float $ttl): void
    {
    }

    public function describe(): string
    {
        return 'none';
    }
}
