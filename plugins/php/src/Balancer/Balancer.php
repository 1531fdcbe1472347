<?php

namespace Soa\Balancer;

use Soa\Instance;

/**
 * Chooses the instance of one call (registry/BALANCING.md). The client hands over only usable
 * instances (weight > 0, not leaving, not ejected, not excluded by the IDL policy), never an
 * empty list, in key order. Pickers keep their state (counters, scores) in the object, which
 * lives as long as its Client: one PHP request under php-fpm, or the whole php-cli process.
 */
interface Balancer
{
    /** The soa.yaml name: round_robin, weighted_round_robin, ... */
    public function name(): string;

    /**
     * @param Instance[] $usable non-empty, in key order
     * @param string|null $key the call's hash key, rendered as text (consistent_hash only)
     */
    public function pick(array $usable, ?string $key = null): Instance;
}
