<?php

namespace Soa;

/** No instance could be connected to: none registered (or all weight 0), or every one refused. */
final class NoInstanceAvailable extends SoaException
{
    /** @param string[] $tried addresses tried, in order */
    public function __construct(string $message, public readonly array $tried = [], ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}
