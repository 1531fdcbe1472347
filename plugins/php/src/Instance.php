<?php

namespace Soa;

/**
 * One registered instance: a registry value (registry/SCHEMA.md) with every field filled in.
 * Instance::parse() checks the value with the vectors' error codes (registry/vectors/*.json).
 */
final class Instance
{
    private const SERVICE_NAME = '/^[a-z][a-z0-9_-]*$/D';
    private const INSTANCE_ID = '/^[A-Za-z0-9_-]{1,64}$/D';

    private string $address;

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
        /** This registration's instance id ("" when the writer gave none); sent as soa-instance. */
        public readonly string $id = '',
        /** The instance accepts THeader frames carrying call metadata. */
        public readonly bool $theader = false,
        /** The instance serves TLS only. */
        public readonly bool $tls = false,
        public readonly int $metricsPort = 0,
    ) {
        $this->address = (str_contains($host, ':') ? "[$host]" : $host) . ":$port";
    }

    /** host:port, with an IPv6 host in brackets (what the registry key ends with). */
    public function address(): string
    {
        return $this->address;
    }

    /** The schema's fields, named as in the registry value. */
    public function toArray(): array
    {
        return [
            'service' => $this->service, 'host' => $this->host, 'port' => $this->port,
            'weight' => $this->weight, 'protocol' => $this->protocol, 'transport' => $this->transport,
            'version' => $this->version, 'idl_hash' => $this->idlHash, 'tags' => $this->tags,
            'pid' => $this->pid, 'started_at' => $this->startedAt, 'id' => $this->id,
            'theader' => $this->theader, 'tls' => $this->tls, 'metrics_port' => $this->metricsPort,
        ];
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
        $pid = self::field($f, 'pid', 'int', 0);
        $startedAt = (float) self::field($f, 'started_at', 'number', 0.0);
        $id = self::field($f, 'id', 'string', '');
        if ($id !== '' && preg_match(self::INSTANCE_ID, $id) !== 1) {
            throw new InvalidInstance('bad_value', "id: not an instance id: \"$id\"");
        }
        $theader = self::field($f, 'theader', 'bool', false);
        $tls = self::field($f, 'tls', 'bool', false);
        $metricsPort = self::field($f, 'metrics_port', 'int', 0);
        if ($metricsPort < 0 || $metricsPort > 65535) {
            throw new InvalidInstance('bad_value', "metrics_port: out of range: $metricsPort");
        }
        $instance = new self(
            $service, $host, $port, $weight, $protocol, $transport, $version, $idlHash, $tags,
            $pid, $startedAt, ($f['leaving'] ?? null) === true, $id, $theader, $tls, $metricsPort,
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
            'bool' => is_bool($v),
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
