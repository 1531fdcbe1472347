<?php

namespace Soa\Balancer;

use Soa\Instance;

/**
 * round_robin: call n goes to usable[n mod len], ignoring weights. A new picker starts at a
 * random n (a php-fpm request lives for a few calls: otherwise every request would begin with
 * the first instance); pass $start for a fixed one.
 */
final class RoundRobin implements Balancer
{
    private int $n;

    public function __construct(?int $start = null)
    {
        $this->n = $start ?? random_int(0, 1 << 20);
    }

    public function name(): string
    {
        return 'round_robin';
    }

    public function pick(array $usable, ?string $key = null): Instance
    {
        return $usable[$this->n++ % count($usable)];
    }
}
