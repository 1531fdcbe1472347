<?php

namespace Soa;

/** Every attempt of a call failed; $attempts holds each attempt's error, in order. */
final class RetryError extends SoaException
{
    /** @param \Throwable[] $attempts */
    public function __construct(
        public readonly string $service,
        public readonly string $method,
        public readonly array $attempts,
    ) {
        $last = end($attempts);
        parent::__construct(
            "soa: $service.$method: " . count($attempts) . ' attempt(s) failed; last: '
                . ($last ? $last->getMessage() : 'none'),
            0,
            $last ?: null,
        );
    }
}
