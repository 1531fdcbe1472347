<?php

namespace Soa\Cache;

/**
 * APCu's shared memory: one copy per php-fpm pool (or per php-cli process with
 * apc.enable_cli=1), reachable only from that pool's processes, so no other user can write it.
 */
final class ApcuCache implements Cache
{
    public const PREFIX = 'soa-registry:';

    /** APCu is loaded and enabled for this SAPI (the CLI needs apc.enable_cli=1). */
    public static function available(): bool
    {
        return function_exists('apcu_enabled') && apcu_enabled();
    }

    public function get(string $key): ?array
    {
        $found = false;
        $entry = apcu_fetch(self::PREFIX . $key, $found);
        return $found && is_array($entry) ? $entry : null;
    }

    public function put(string $key, array $entry, float $ttl): void
    {
        apcu_store(self::PREFIX . $key, $entry, max(1, (int) ceil($ttl)));
    }

    public function describe(): string
    {
        return 'apcu';
    }
}
