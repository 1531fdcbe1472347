<?php

namespace Soa;

/**
 * etcd's v3 JSON gateway over plain HTTP (PHP streams, no extension needed): a range over a
 * prefix. A request that cannot reach an endpoint goes to the next one.
 */
final class EtcdGateway
{
    /** @var string[] base URLs */
    private array $endpoints = [];

    /** @param string[] $endpoints URLs or host:port */
    public function __construct(array $endpoints, private float $timeout = 2.0)
    {
        foreach ($endpoints as $e) {
            $e = rtrim(trim($e), '/');
            if ($e !== '') {
                $this->endpoints[] = str_contains($e, '://') ? $e : "http://$e";
            }
        }
        if (!$this->endpoints) {
            throw new DiscoveryError('etcd: no endpoints configured');
        }
    }

    /**
     * Every key under $prefix.
     *
     * @return array{kvs: list<array{key: string, value: string}>, revision: int}
     */
    public function range(string $prefix): array
    {
        $body = ['key' => base64_encode($prefix), 'range_end' => base64_encode(self::rangeEnd($prefix))];
        $data = $this->post('/v3/kv/range', $body);
        $kvs = [];
        foreach ($data['kvs'] ?? [] as $kv) {
            $kvs[] = ['key' => base64_decode($kv['key'] ?? ''), 'value' => base64_decode($kv['value'] ?? '')];
        }
        return ['kvs' => $kvs, 'revision' => (int) ($data['header']['revision'] ?? 0)];
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

    private function post(string $path, array $body): array
    {
        $errors = [];
        foreach ($this->endpoints as $endpoint) {
            $context = stream_context_create(['http' => [
                'method' => 'POST',
                'header' => "Content-Type: application/json\r\nConnection: close\r\n",
                'content' => json_encode($body),
                'timeout' => $this->timeout,
                'ignore_errors' => true,
                'proxy' => '',
            ]]);
            error_clear_last();
            $text = @file_get_contents($endpoint . $path, false, $context);
            if ($text === false) {
                $errors[] = "$endpoint: " . (error_get_last()['message'] ?? 'unreachable');
                continue;
            }
            $status = self::status($http_response_header ?? []);
            $data = json_decode($text, true);
            if ($status !== 200 || !is_array($data)) {
                $errors[] = "$endpoint: HTTP $status: " . substr($text, 0, 200);
                continue;
            }
            return $data;
        }
        throw new DiscoveryError('etcd unreachable: ' . implode('; ', $errors));
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
