<?php

namespace Soa;

/**
 * No instance can take the call: none registered, all of weight 0 or excluded by the IDL policy,
 * or (with $tried) every one tried refused the connection.
 */
final class NoInstanceAvailable extends DiscoveryError
{
    /** @param string[] $tried addresses tried, in order */
    public function __construct(string $message, public readonly array $tried = [], ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}
