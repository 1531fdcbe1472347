<?php

namespace Soa\Balancer;

/**
 * Calls in flight per address, from this process: the client counts each attempt in and out.
 * PHP runs one call at a time per request, so the counts matter within a process that makes
 * calls from several places at once (an async runtime, a generator pipeline), and are 0 otherwise.
 */
final class Inflight
{
    /** @var array<string, int> */
    private array $count = [];

    public function start(string $address): void
    {
        $this->count[$address] = ($this->count[$address] ?? 0) + 1;
    }

    public function finish(string $address): void
    {
        if (($this->count[$address] ?? 0) <= 1) {
            unset($this->count[$address]);
        } else {
            $this->count[$address]--;
        }
    }

    public function of(string $address): int
    {
        return $this->count[$address] ?? 0;
    }
}
