<?php

namespace Soa\Cache;

/**
 * Where the Registry keeps each service's last listing between PHP requests. An entry is
 * ['at' => Unix time of the listing, 'kvs' => list of [key, value]]: the raw registry values,
 * parsed again (and so checked again) on every read. Implementations never throw: a store that
 * cannot be used reads as empty and drops writes, with one warning through the logger.
 */
interface Cache
{
    /** The entry stored under $key, or null (none, unreadable, or refused). */
    public function get(string $key): ?array;

    /** Stores $entry under $key, replacing the previous one; $ttl bounds how long it is kept. */
    public function put(string $key, array $entry, float $ttl): void;

    /** What the store is, for messages: "apcu", "file:/path", "none". */
    public function describe(): string;
}
