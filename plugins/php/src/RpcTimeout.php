<?php

namespace Soa;

/**
 * The call's deadline passed: locally before the reply came, or the server refused the call
 * unexecuted because it arrived late (THeader `soa-error: late`; then $refused is true).
 */
final class RpcTimeout extends TransportError
{
    public function __construct(
        string $message,
        string $address = '',
        bool $sent = true,
        ?\Throwable $previous = null,
        public readonly bool $refused = false,
    ) {
        parent::__construct($message, $address, $sent, $previous);
    }
}
