<?php

namespace Soa\Balancer;

use Soa\ConfigError;

/** Builds a balancer from its soa.yaml name. */
final class Balancers
{
    public const NAMES = ['round_robin', 'weighted_round_robin', 'weighted_random', 'least_inflight', 'consistent_hash'];

    /** @throws ConfigError for an unknown name */
    public static function byName(string $name, ?Inflight $inflight = null): Balancer
    {
        return match ($name) {
            'round_robin' => new RoundRobin(),
            'weighted_round_robin' => new WeightedRoundRobin(),
            'weighted_random' => new WeightedRandom(),
            'least_inflight' => new LeastInflight($inflight ?? new Inflight()),
            'consistent_hash' => new ConsistentHash(),
            default => throw new ConfigError(
                "balancer: expected one of " . implode(', ', self::NAMES) . ", got \"$name\""
            ),
        };
    }
}
