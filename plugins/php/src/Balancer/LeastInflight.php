<?php

namespace Soa\Balancer;

use Soa\Instance;

/**
 * least_inflight, power of two choices: draw two distinct instances uniformly, take the one with
 * fewer calls in flight from this process (Inflight), the first drawn on a tie. Weights other
 * than 0 are not used.
 */
final class LeastInflight implements Balancer
{
    public function __construct(private Inflight $inflight = new Inflight())
    {
    }

    public function name(): string
    {
        return 'least_inflight';
    }

    public function inflight(): Inflight
    {
        return $this->inflight;
    }

    public function pick(array $usable, ?string $key = null): Instance
    {
        $n = count($usable);
        if ($n === 1) {
            return $usable[0];
        }
        $a = random_int(0, $n - 1);
        $b = random_int(0, $n - 2);
        if ($b >= $a) {
            $b++;
        }
        $fa = $this->inflight->of($usable[$a]->address());
        $fb = $this->inflight->of($usable[$b]->address());
        return $fb < $fa ? $usable[$b] : $usable[$a];
    }
}
