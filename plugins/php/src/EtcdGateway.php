<?php

namespace Soa;

/**
 * etcd's v3 JSON gateway (grpc-gateway, served on etcd's client port) over PHP streams: a range
 * over a prefix, and the put/delete the tests need. PHP has no maintained etcd v3 client in
 * Debian, and grpc's PHP extension is neither in Debian nor light enough for a plugin, so the
 * gateway it is. A request that cannot reach an endpoint goes to the next one.
 *
 * Options: timeout (seconds per request, 2.0); user and password (etcd authentication: a token
 * from /v3/auth/authenticate is sent in the Authorization header, fetched on first use and
 * again once when etcd says it is no longer valid); tls => [ca, cert, key, server_name]
 * (https with the CA to verify etcd's certificate, and a client certificate for mTLS; an endpoint
 * without a scheme then gets https://). The password never appears in an error message.
 */
final class EtcdGateway
{
    /** @var string[] base URLs */
    private array $endpoints = [];
    private float $timeout;
    private ?string $user;
    private ?string $password;
    private array $tls;
    private ?string $token = null;

    /** @param string[] $endpoints URLs or host:port */
    public function __construct(array $endpoints, array $options = [])
    {
        $this->timeout = (float) ($options['timeout'] ?? 2.0);
        $this->user = $options['user'] ?? null;
        $this->password = $options['password'] ?? null;
        $this->tls = $options['tls'] ?? [];
        if (!is_array($this->tls)) {
            throw new ConfigError('etcd tls: expected an array of ca, cert, key, server_name');
        }
        $scheme = $this->tls ? 'https' : 'http';
        foreach ($endpoints as $e) {
            $e = rtrim(trim($e), '/');
            if ($e !== '') {
                $this->endpoints[] = str_contains($e, '://') ? $e : "$scheme://$e";
            }
        }
        if (!$this->endpoints) {
            throw new ConfigError('etcd endpoints: none configured');
        }
        if (($this->user === null) !== ($this->password === null)) {
            throw new ConfigError('etcd user and password: give both or neither');
        }
    }

    /**
     * Every key under $prefix.
     *
     * @return array{kvs: list<array{key: string, value: string}>, revision: int}
     * @throws DiscoveryError
     */
    public function range(string $prefix): array
    {
        $body = ['key' => base64_encode($prefix), 'range_end' => base64_encode(self::rangeEnd($prefix))];
        $data = $this->call('/v3/kv/range', $body);
        $kvs = [];
        foreach ($data['kvs'] ?? [] as $kv) {
            $kvs[] = ['key' => base64_decode($kv['key'] ?? ''), 'value' => base64_decode($kv['value'] ?? '')];
        }
        return ['kvs' => $kvs, 'revision' => (int) ($data['header']['revision'] ?? 0)];
    }

    /** Writes $key (no lease). @throws DiscoveryError */
    public function put(string $key, string $value): void
    {
        $this->call('/v3/kv/put', ['key' => base64_encode($key), 'value' => base64_encode($value)]);
    }

    /** Deletes $key. @throws DiscoveryError */
    public function delete(string $key): void
    {
        $this->call('/v3/kv/deleterange', ['key' => base64_encode($key)]);
    }

    /** The end of the range holding every key that starts with $prefix. */
    public static function rangeEnd(string $prefix): string
    {
        for ($i = strlen($prefix) - 1; $i >= 0; $i--) {
            if (ord($prefix[$i]) < 0xff) {
                return substr($prefix, 0, $i) . chr(ord($prefix[$i]) + 1);
            }
        }
        return "\0";
    }

    private function call(string $path, array $body): array
    {
        if ($this->user !== null && $this->token === null) {
            $this->authenticate();
        }
        [$status, $data, $errors] = $this->post($path, $body);
        if ($status === 401 && $this->user !== null) { // the token expired (etcd restarted, TTL)
            $this->authenticate();
            [$status, $data, $errors] = $this->post($path, $body);
        }
        if ($data === null) {
            throw new DiscoveryError('etcd unreachable: ' . implode('; ', $errors));
        }
        return $data;
    }

    private function authenticate(): void
    {
        $this->token = null;
        [$status, $data, $errors] = $this->post('/v3/auth/authenticate', ['name' => $this->user, 'password' => $this->password]);
        if ($data === null || !is_string($data['token'] ?? null)) {
            throw new DiscoveryError("etcd: authentication as \"{$this->user}\" failed: " . implode('; ', $errors));
        }
        $this->token = $data['token'];
    }

    /** @return array{0: int, 1: ?array, 2: string[]} the last status, the decoded body or null, errors */
    private function post(string $path, array $body): array
    {
        $errors = [];
        $status = 0;
        foreach ($this->endpoints as $endpoint) {
            $headers = "Content-Type: application/json\r\nConnection: close\r\n";
            if ($this->token !== null && $path !== '/v3/auth/authenticate') {
                $headers .= "Authorization: {$this->token}\r\n";
            }
            $options = ['http' => [
                'method' => 'POST', 'header' => $headers, 'content' => json_encode($body),
                'timeout' => $this->timeout, 'ignore_errors' => true, 'proxy' => '',
            ]];
            if (str_starts_with($endpoint, 'https://')) {
                $options['ssl'] = array_filter([
                    'verify_peer' => true, 'verify_peer_name' => true,
                    'cafile' => $this->tls['ca'] ?? null,
                    'local_cert' => $this->tls['cert'] ?? null,
                    'local_pk' => $this->tls['key'] ?? null,
                    'peer_name' => $this->tls['server_name'] ?? null,
                ], fn ($v) => $v !== null);
            }
            $warnings = [];
            set_error_handler(static function (int $no, string $message) use (&$warnings): bool {
                $warnings[] = self::cleanError($message); // TLS says why in an earlier warning
                return true;
            });
            try {
                $text = file_get_contents($endpoint . $path, false, stream_context_create($options));
            } finally {
                restore_error_handler();
            }
            if ($text === false) {
                $errors[] = "$endpoint: " . (implode('; ', array_unique($warnings)) ?: 'unreachable');
                continue;
            }
            $status = self::status($http_response_header ?? []);
            $data = json_decode($text, true);
            if ($status === 200 && is_array($data)) {
                return [$status, $data, $errors];
            }
            $detail = is_array($data) && isset($data['message']) ? $data['message'] : substr($text, 0, 200);
            $errors[] = "$endpoint: HTTP $status: $detail";
            if ($status === 401 || $status === 400) {
                return [$status, null, $errors]; // etcd answered: another endpoint will say the same
            }
        }
        return [$status, null, $errors];
    }

    /** PHP's stream warning without the function-call prefix, on one line. */
    private static function cleanError(string $message): string
    {
        $message = preg_replace('/^file_get_contents\([^)]*\): /', '', $message);
        return trim(preg_replace('/\s+/', ' ', $message));
    }

    private static function status(array $headers): int
    {
        $status = 0;
        foreach ($headers as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $status = (int) $m[1]; // the last status line (after redirects)
            }
        }
        return $status;
    }
}
