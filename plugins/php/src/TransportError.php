<?php

namespace Soa;

/**
 * A call's connection failed. $sent tells whether the request may have reached the server:
 * false for a refused connect (always retried elsewhere), true once any byte was written
 * (retried only for idempotent methods).
 */
class TransportError extends SoaException
{
    public function __construct(
        string $message,
        public readonly string $address = '',
        public readonly bool $sent = true,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($address !== '' ? "$address: $message" : $message, 0, $previous);
    }
}
