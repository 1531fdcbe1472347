<?php

namespace Soa\Balancer;

use Soa\Instance;

/** weighted_random: an instance with probability weight / sum(weights). */
final class WeightedRandom implements Balancer
{
    public function name(): string
    {
        return 'weighted_random';
    }

    public function pick(array $usable, ?string $key = null): Instance
    {
        $total = 0;
        foreach ($usable as $i) {
            $total += $i->weight;
        }
        $r = random_int(0, $total - 1);
        foreach ($usable as $i) {
            $r -= $i->weight;
            if ($r < 0) {
                return $i;
            }
        }
        return $usable[count($usable) - 1]; // not reached: weights are > 0
    }
}
