<?php

namespace Soa;

/**
 * One registered instance: a registry value (registry/SCHEMA.md) with every field filled in.
 * Instance::parse() checks the value with the vectors' error codes.
 */
final class Instance
{
    private const SERVICE_NAME = '/^[a-z][a-z0-9_-]*$/D';

    /** @param array<string, string> $tags */
    public function __construct(
        public readonly string $service,
        public readonly string $host,
        public readonly int $port,
        public readonly int $weight = 100,
        public readonly string $protocol = 'binary',
        public readonly string $transport = 'buffered',
        public readonly string $version = '',
        public readonly string $idlHash = '',
        public readonly array $tags = [],
        public readonly int $pid = 0,
        public readonly float $startedAt = 0.0,
        /** True when the value was marked just before deregistration: treat it as gone. */
        public readonly bool $leaving = false,
    ) {
    }

    /** host:port, with an IPv6 host in brackets (what the registry key ends with). */
    public function address(): string
    {
        $host = str_contains($this->host, ':') ? "[{$this->host}]" : $this->host;
        return "$host:{$this->port}";
    }

    /** The schema's fields, named as in the registry value. */
    public function toArray(): array
    {
        return [
            'service' => $this->service, 'host' => $this->host, 'port' => $this->port,
            'weight' => $this->weight, 'protocol' => $this->protocol, 'transport' => $this->transport,
            'version' => $this->version, 'idl_hash' => $this->idlHash, 'tags' => $this->tags,
            'pid' => $this->pid, 'started_at' => $this->startedAt,
        ];
    }

    public static function fromArray(array $a): self
    {
        return new self(
            $a['service'], $a['host'], $a['port'], $a['weight'], $a['protocol'], $a['transport'],
            $a['version'], $a['idl_hash'], $a['tags'], $a['pid'], (float) $a['started_at'],
        );
    }

    /** "{prefix}/services/{service}/": the range holding a service's instances. */
    public static function servicePrefix(string $prefix, string $service): string
    {
        return rtrim($prefix, '/') . "/services/$service/";
    }

    /**
     * Parses a registry value. With $key, the key's service and address must match the
     * value's. Throws InvalidInstance; fields are checked in the schema's order.
     */
    public static function parse(string $value, ?string $key = null, string $prefix = '/soa'): self
    {
        if (preg_match('//u', $value) !== 1) {
            throw new InvalidInstance('not_utf8', 'the value is not UTF-8');
        }
        try {
            $data = json_decode($value, false, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new InvalidInstance('not_json', $e->getMessage());
        }
        if (!$data instanceof \stdClass) {
            throw new InvalidInstance('not_object', 'expected a JSON object, got ' . self::kind($data));
        }
        $f = get_object_vars($data);
        $service = self::field($f, 'service', 'string');
        if (preg_match(self::SERVICE_NAME, $service) !== 1) {
            throw new InvalidInstance('bad_value', "service: not a service name: \"$service\"");
        }
        $host = self::field($f, 'host', 'string');
        if ($host === '' || strpbrk($host, "/ \t[]") !== false) {
            throw new InvalidInstance('bad_value', "host: not a host: \"$host\"");
        }
        $port = self::field($f, 'port', 'int');
        if ($port < 1 || $port > 65535) {
            throw new InvalidInstance('bad_value', "port: out of range: $port");
        }
        $weight = self::field($f, 'weight', 'int', 100);
        if ($weight < 0) {
            throw new InvalidInstance('bad_value', "weight: negative: $weight");
        }
        $protocol = self::field($f, 'protocol', 'string', 'binary');
        if (!in_array($protocol, ['binary', 'compact'], true)) {
            throw new InvalidInstance('bad_value', "protocol: unknown: \"$protocol\"");
        }
        $transport = self::field($f, 'transport', 'string', 'buffered');
        if (!in_array($transport, ['buffered', 'framed'], true)) {
            throw new InvalidInstance('bad_value', "transport: unknown: \"$transport\"");
        }
        $version = self::field($f, 'version', 'string', '');
        $idlHash = self::field($f, 'idl_hash', 'string', '');
        $tags = self::field($f, 'tags', 'object', new \stdClass());
        $tags = get_object_vars($tags);
        foreach ($tags as $name => $tag) {
            if (!is_string($tag)) {
                throw new InvalidInstance('bad_type', "tags: values must be strings ($name)");
            }
        }
        $instance = new self(
            $service, $host, $port, $weight, $protocol, $transport, $version, $idlHash, $tags,
            self::field($f, 'pid', 'int', 0),
            (float) self::field($f, 'started_at', 'number', 0.0),
            ($f['leaving'] ?? null) === true,
        );
        if ($key !== null) {
            $want = self::servicePrefix($prefix, $service) . $instance->address();
            if ($key !== $want) {
                throw new InvalidInstance('key_mismatch', "key $key does not match $want");
            }
        }
        return $instance;
    }

    /** A required field ($default null) or an optional one whose null means its default. */
    private static function field(array $f, string $name, string $type, mixed $default = null): mixed
    {
        if (!array_key_exists($name, $f)) {
            if ($default === null) {
                throw new InvalidInstance('missing_field', "$name: required");
            }
            return $default;
        }
        $v = $f[$name];
        if ($v === null && $default !== null) {
            return $default;
        }
        $ok = match ($type) {
            'string' => is_string($v),
            'int' => is_int($v),
            'number' => is_int($v) || is_float($v),
            'object' => $v instanceof \stdClass,
        };
        if (!$ok) {
            throw new InvalidInstance('bad_type', "$name: expected $type, got " . self::kind($v));
        }
        return $v;
    }

    private static function kind(mixed $v): string
    {
        return match (true) {
            $v === null => 'null',
            is_bool($v) => 'a boolean',
            is_int($v), is_float($v) => 'a number',
            is_string($v) => 'a string',
            is_array($v) => 'an array',
            default => 'an object',
        };
    }
}
