<?php

namespace Soa;

use Thrift\Transport\TSocket;

/**
 * A TSocket for one call at a time, with three things TSocket lacks:
 * - one deadline for the whole call (setDeadline), which bounds the connect, every write and
 *   every read; TSocket's own timeouts apply to each read or write;
 * - TLS (tls://, with the CA, client certificate and server name of $tls) for instances that
 *   registered "tls": true;
 * - errors that say whether the request may have reached the server: TransportError with
 *   sent=false for a failed connect or a write that wrote nothing, sent=true after that;
 *   RpcTimeout when the deadline passes.
 * With $persist it opens a persistent stream (stream_socket_client with
 * STREAM_CLIENT_PERSISTENT, the mechanism behind TSocket's pfsockopen) that outlives the PHP
 * request: the next request of the same php-fpm worker gets it back. close() really closes it;
 * release() just lets go of it at the end of a request.
 */
final class Socket extends TSocket
{
    private float $deadline = INF;
    private int $written = 0;

    /** @param array{ca?: string, cert?: string, key?: string, server_name?: string}|null $tls */
    public function __construct(
        string $host,
        int $port,
        bool $persist,
        private ?array $tls = null,
        private int $connectTimeoutMs = 250,
    ) {
        parent::__construct($host, $port, $persist);
    }

    public function address(): string
    {
        return (str_contains($this->host_, ':') ? "[{$this->host_}]" : $this->host_) . ':' . $this->port_;
    }

    /** The current call ends at $deadline (a microtime(true) instant); resets the byte count. */
    public function setDeadline(float $deadline): void
    {
        $this->deadline = $deadline;
        $this->written = 0;
    }

    public function open()
    {
        $this->connect(true);
    }

    private function connect(bool $again): void
    {
        $left = $this->deadline - microtime(true);
        if ($left <= 0) {
            throw new RpcTimeout('the deadline passed before connecting', $this->address(), false);
        }
        $scheme = $this->tls !== null ? 'tls' : 'tcp';
        $context = stream_context_create($this->tls !== null ? ['ssl' => array_filter([
            'verify_peer' => true, 'verify_peer_name' => true,
            'cafile' => $this->tls['ca'] ?? null,
            'local_cert' => $this->tls['cert'] ?? null,
            'local_pk' => $this->tls['key'] ?? null,
            'peer_name' => $this->tls['server_name'] ?? $this->host_,
        ], fn ($v) => $v !== null)] : []);
        $flags = STREAM_CLIENT_CONNECT | ($this->persist_ ? STREAM_CLIENT_PERSISTENT : 0);
        error_clear_last();
        $handle = @stream_socket_client("$scheme://{$this->address()}", $errno, $errstr,
            min($left, $this->connectTimeoutMs / 1000), $flags, $context);
        if ($handle === false) {
            $why = $errstr !== '' ? $errstr : (error_get_last()['message'] ?? 'failed');
            throw new TransportError("cannot connect: $why", $this->address(), false);
        }
        $this->handle_ = $handle;
        stream_set_blocking($handle, true);
        // No PHP read buffer: with one, fread() after stream_select() copies what is buffered
        // and then blocks for more; the transports above buffer anyway.
        stream_set_read_buffer($handle, 0);
        if ($again && $this->isStale()) { // a persistent stream the server closed, or holding junk
            $this->close();
            $this->connect(false);
            return;
        }
        if (function_exists('socket_import_stream') && $this->tls === null) {
            $socket = @socket_import_stream($handle);
            if ($socket !== false && $socket !== null) {
                @socket_set_option($socket, SOL_TCP, TCP_NODELAY, 1);
            }
        }
    }

    /**
     * True when the stream has something to read before a request was sent: end of file (the
     * server closed it) or bytes left from an exchange that was cut short. Either way it must
     * not carry a call.
     */
    public function isStale(): bool
    {
        if (!is_resource($this->handle_)) {
            return true;
        }
        $read = [$this->handle_];
        $none = null;
        return @stream_select($read, $none, $none, 0, 0) !== 0;
    }

    /** Lets go of the stream without closing it (a persistent one stays for the next request). */
    public function release(): void
    {
        $this->handle_ = null;
    }

    public function read($len)
    {
        $read = [$this->handle_];
        $none = null;
        $left = $this->deadline - microtime(true);
        $us = $left < 86400 ? (int) ($left * 1e6) : 86400000000; // no deadline (INF): a day
        if ($us <= 0 || ($ready = @stream_select($read, $none, $none, intdiv($us, 1000000), $us % 1000000)) === 0) {
            throw new RpcTimeout('timed out waiting for the reply', $this->address(), true);
        }
        $data = $ready === false ? false : @fread($this->handle_, $len);
        if ($data === false || ($data === '' && feof($this->handle_))) {
            throw new TransportError('the connection was closed before the reply', $this->address(), true);
        }
        return $data;
    }

    public function write($buf)
    {
        while ($buf !== '') {
            $write = [$this->handle_];
            $none = null;
            $left = $this->deadline - microtime(true);
            $us = $left < 86400 ? (int) ($left * 1e6) : 86400000000;
            if ($us <= 0 || ($ready = @stream_select($none, $write, $none, intdiv($us, 1000000), $us % 1000000)) === 0) {
                throw new RpcTimeout('timed out sending the request', $this->address(), $this->written > 0);
            }
            $n = $ready === false ? false : @fwrite($this->handle_, $buf);
            if ($n === false || $n === 0) {
                throw new TransportError('the connection failed while sending', $this->address(), $this->written > 0);
            }
            $this->written += $n;
            if ($n === strlen($buf)) {
                return;
            }
            $buf = substr($buf, $n);
        }
    }
}
