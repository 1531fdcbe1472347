<?php

namespace Soa;

/**
 * The address now serves another service or instance (THeader `soa-error: wrong-target`): the
 * call was not executed, so it goes to another instance, and this one is dropped by the client.
 */
final class WrongTarget extends TransportError
{
    public function __construct(string $message, string $address = '')
    {
        parent::__construct($message, $address, false);
    }
}
