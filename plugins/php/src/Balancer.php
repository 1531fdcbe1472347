<?php

namespace Soa;

/**
 * Smooth weighted round robin (the nginx algorithm): over any window of total-weight picks each
 * instance gets its weight's share, evenly interleaved; weight 0 is never picked. A PHP process
 * is short-lived, so a new Balancer starts at a random point of the rotation: otherwise every
 * request would send its first call to the same instance.
 */
final class Balancer
{
    /** @var array<string, int> address => running score */
    private array $current = [];
    private bool $started;

    public function __construct(bool $randomStart = true)
    {
        $this->started = !$randomStart;
    }

    /**
     * The next instance of $set, leaving out the addresses in $skip (address => true); null
     * when none is left with weight > 0.
     *
     * @param Instance[] $set
     */
    public function pick(array $set, array $skip = []): ?Instance
    {
        if (!$this->started) {
            $this->started = true;
            $total = array_sum(array_map(fn (Instance $i) => max(0, $i->weight), $set));
            for ($n = $total > 0 ? random_int(0, min($total, 1000) - 1) : 0; $n > 0; $n--) {
                $this->pick($set);
            }
        }
        $total = 0;
        $best = null;
        $live = [];
        foreach ($set as $instance) {
            $addr = $instance->address();
            $live[$addr] = true;
            if ($instance->weight <= 0 || isset($skip[$addr])) {
                continue;
            }
            $this->current[$addr] = ($this->current[$addr] ?? 0) + $instance->weight;
            $total += $instance->weight;
            if ($best === null || $this->current[$addr] > $this->current[$best->address()]) {
                $best = $instance;
            }
        }
        $this->current = array_intersect_key($this->current, $live);
        if ($best !== null) {
            $this->current[$best->address()] -= $total;
        }
        return $best;
    }
}
