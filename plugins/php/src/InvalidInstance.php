<?php

namespace Soa;

/** A registry value that breaks registry/SCHEMA.md; getReason() is the vectors' error code. */
final class InvalidInstance extends \InvalidArgumentException
{
    public function __construct(private string $reason, string $message)
    {
        parent::__construct("$reason: $message");
    }

    public function getReason(): string
    {
        return $this->reason;
    }
}
