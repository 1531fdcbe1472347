<?php
// Stands in for what `soa gen` writes next to Apache-generated PHP code: a client class and the
// SoaIdl class in the same namespace.

namespace SoaGenerated\Tiny;

final class SoaIdl
{
    public const SERVICE = 'tiny';
    public const IDL_HASH = 'sha256:0123456789abcdef';
}

final class TinyClient
{
    private \Soa\Tests\Fixtures\TinyClient $inner;

    public function __construct($protocol)
    {
        $this->inner = new \Soa\Tests\Fixtures\TinyClient($protocol);
    }

    public function hello(string $name): string
    {
        return $this->inner->hello($name);
    }
}
