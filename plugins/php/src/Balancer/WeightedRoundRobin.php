<?php

namespace Soa\Balancer;

use Soa\Instance;

/**
 * weighted_round_robin, nginx's smooth WRR: every pick adds each instance's weight to its score,
 * takes the largest (the first in key order on a tie) and subtracts the total from it. Over any
 * window of total-weight picks each instance gets its weight's share, evenly interleaved. A new
 * picker starts at a random point of the rotation unless $randomStart is false.
 */
final class WeightedRoundRobin implements Balancer
{
    /** @var array<string, int> address => score */
    private array $current = [];
    private bool $started;

    public function __construct(bool $randomStart = true)
    {
        $this->started = !$randomStart;
    }

    public function name(): string
    {
        return 'weighted_round_robin';
    }

    public function pick(array $usable, ?string $key = null): Instance
    {
        if (!$this->started) {
            $this->started = true;
            $total = 0;
            foreach ($usable as $i) {
                $total += $i->weight;
            }
            for ($n = random_int(0, max(1, min($total, 1000)) - 1); $n > 0; $n--) {
                $this->pick($usable);
            }
        }
        $total = 0;
        $best = null;
        $bestScore = 0;
        $scores = [];
        foreach ($usable as $instance) {
            $addr = $instance->address();
            $score = ($this->current[$addr] ?? 0) + $instance->weight;
            $scores[$addr] = $score;
            $total += $instance->weight;
            if ($best === null || $score > $bestScore) {
                $best = $instance;
                $bestScore = $score;
            }
        }
        $scores[$best->address()] -= $total;
        $this->current = $scores; // instances no longer usable lose their score
        return $best;
    }
}
