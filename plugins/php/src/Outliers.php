<?php

namespace Soa;

/**
 * Outlier ejection within the process, as in the Python client: a failed connect, or a timeout
 * after the request was sent, is a strike for the instance; any answer clears its strikes.
 * After $ejectAfter strikes in a row the instance is ejected for base * 2^(n-1) seconds (n =
 * ejections in a row, capped at $cap). When that time is up it is tried again: one more failure
 * ejects it for twice as long, an answer ends the streak. Ejected instances are passed over
 * while others are usable; they are never all left out (the client then uses them anyway).
 * An instance that answered `wrong-target` is dropped for as long as its registry value keeps
 * the same id. State lives as long as the Client (one request under php-fpm).
 */
final class Outliers
{
    /** @var array<string, int> */
    private array $strikes = [];
    /** @var array<string, int> */
    private array $streak = [];
    /** @var array<string, float> address => ejected until (microtime) */
    private array $until = [];
    /** @var array<string, true> "address|id" => dropped */
    private array $dropped = [];

    public function __construct(private int $ejectAfter = 3, private float $base = 0.5, private float $cap = 30.0)
    {
    }

    /** True when no instance has strikes, an ejection or a drop: nothing to leave out. */
    public function isQuiet(): bool
    {
        return !$this->until && !$this->dropped;
    }

    public function failed(string $address): void
    {
        $this->strikes[$address] = ($this->strikes[$address] ?? 0) + 1;
        $readmitted = isset($this->streak[$address]) && !isset($this->until[$address]);
        if ($this->strikes[$address] >= $this->ejectAfter || $readmitted) {
            $n = $this->streak[$address] = ($this->streak[$address] ?? 0) + 1;
            $this->until[$address] = microtime(true) + min($this->cap, $this->base * 2 ** ($n - 1));
            $this->strikes[$address] = 0;
        }
    }

    public function answered(string $address): void
    {
        if (isset($this->strikes[$address]) || isset($this->streak[$address])) {
            unset($this->strikes[$address], $this->streak[$address], $this->until[$address]);
        }
    }

    public function drop(Instance $instance): void
    {
        $this->dropped[$instance->address() . '|' . $instance->id] = true;
    }

    public function isDropped(Instance $instance): bool
    {
        return isset($this->dropped[$instance->address() . '|' . $instance->id]);
    }

    public function isEjected(string $address, float $now): bool
    {
        $until = $this->until[$address] ?? null;
        if ($until === null) {
            return false;
        }
        if ($until <= $now) {
            unset($this->until[$address]); // its time is up: tried again (streak remembered)
            return false;
        }
        return true;
    }
}
