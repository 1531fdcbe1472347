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
 * Plain TCP calls go through ext/sockets on the stream's descriptor when it is there: the socket
 * blocks, and the kernel bounds each send and recv by SO_SNDTIMEO / SO_RCVTIMEO, so a reply
 * costs one recv (no poll or select before it). The kernel timeout is set again only when the
 * time left would end more than TIMEOUT_SLACK before it, or when the time left is over twice as
 * long (a timeout that ends early is waited again): calls with the same timeout set it once per
 * connection, and a wait never outlasts the deadline by more than TIMEOUT_SLACK. TLS, and PHP
 * without ext/sockets, wait with stream_select() under the deadline.
 * With $persist it opens a persistent stream (stream_socket_client with
 * STREAM_CLIENT_PERSISTENT, the mechanism behind TSocket's pfsockopen) that outlives the PHP
 * request: the next request of the same php-fpm worker gets it back. close() really closes it;
 * release() just lets go of it at the end of a request.
 */
final class Socket extends TSocket
{
    /** Seconds a kernel-timed wait may end after the deadline (soa-deadline-ms counts whole ms). */
    public const TIMEOUT_SLACK = 0.001;

    private float $deadline = INF;
    /** The descriptor through ext/sockets, blocking (plain TCP); null: stream_select() waits. */
    private ?\Socket $sock = null;
    /** @var array<int, float> the seconds SO_RCVTIMEO and SO_SNDTIMEO are set to on $sock */
    private array $armed = [];
    private int $written = 0;
    /** OpenSSL's reason when isStale() found the server's TLS alert. */
    private ?string $tlsRefusal = null;

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
        $errno = 0;
        $errstr = '';
        $handle = self::keepingTlsReasons(function () use (&$errno, &$errstr, $scheme, $left, $flags, $context) {
            return @stream_socket_client("$scheme://{$this->address()}", $errno, $errstr,
                min($left, $this->connectTimeoutMs / 1000), $flags, $context);
        }, $tlsWhy, $warning);
        if ($handle === false) {
            $tcpWhy = $errstr !== '' && $errstr !== 'Unknown error' ? $errstr : null; // PHP's sign of TLS
            if ($this->tls !== null && ($tlsWhy !== null || $tcpWhy === null)) {
                $why = 'TLS handshake failed: ' . ($tlsWhy ?? 'the server closed the connection (does it serve TLS?)');
            } else {
                $why = $tcpWhy ?? $warning ?? 'failed';
            }
            throw new TransportError("cannot connect: $why", $this->address(), false);
        }
        $this->handle_ = $handle;
        // Plain TCP: PHP's stream is non-blocking, so PHP's own wait before each read (a poll())
        // never runs; below, ext/sockets makes the descriptor block under kernel timeouts, or,
        // without it, this class waits with stream_select() under the deadline, and a request
        // that fits the socket buffer is written without waiting first. TLS stays blocking: a
        // TLS record may come in pieces, which a non-blocking fread() reports as nothing read.
        stream_set_blocking($handle, $this->tls !== null);
        // No PHP read buffer: with one, fread() after stream_select() copies what is buffered
        // and then blocks for more; the transports above buffer anyway.
        stream_set_read_buffer($handle, 0);
        if ($again && $this->isStale()) { // a persistent stream the server closed, or holding junk
            $this->close();
            if ($this->tlsRefusal !== null) { // or the server's TLS alert, on a fresh connection
                throw new TransportError("the server refused the TLS session: {$this->tlsRefusal}", $this->address(), false);
            }
            $this->connect(false);
            return;
        }
        $this->sock = null;
        $this->armed = []; // a persistent descriptor keeps the last request's: unknown here
        if (function_exists('socket_import_stream') && $this->tls === null) {
            $socket = @socket_import_stream($handle);
            if ($socket !== false && $socket !== null) {
                @socket_set_option($socket, SOL_TCP, TCP_NODELAY, 1);
                if (@socket_set_block($socket)) {
                    $this->sock = $socket;
                }
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
        $this->tlsRefusal = null;
        if (!is_resource($this->handle_)) {
            return true;
        }
        $read = [$this->handle_];
        $none = null;
        if (@stream_select($read, $none, $none, 0, 0) === 0) {
            return false;
        }
        if ($this->tls === null) {
            return true;
        }
        // TLS: what is there to read may be the server's session tickets (TLS 1.3), which OpenSSL
        // takes in without returning data, or its alert refusing our certificate.
        stream_set_blocking($this->handle_, false);
        $data = self::keepingTlsReasons(fn () => @fread($this->handle_, 1), $this->tlsRefusal);
        if (is_resource($this->handle_)) {
            stream_set_blocking($this->handle_, true);
        }
        return $data !== '' || feof($this->handle_);
    }

    /** Lets go of the stream without closing it (a persistent one stays for the next request). */
    public function release(): void
    {
        $this->handle_ = null;
        $this->sock = null;
    }

    public function close()
    {
        $this->sock = null;
        parent::close();
    }

    public function read($len)
    {
        if ($this->sock !== null) {
            return $this->receive($len);
        }
        while (true) {
            $this->await(true);
            $tlsWhy = null;
            if ($this->tls === null) { // no OpenSSL reason to keep: no error handler to set
                $data = @fread($this->handle_, $len);
            } else {
                $data = self::keepingTlsReasons(fn () => @fread($this->handle_, $len), $tlsWhy);
            }
            if ($data !== false && $data !== '') {
                return $data;
            }
            if ($data === '' && !feof($this->handle_)) {
                continue; // readable, yet nothing came (a wake-up without data): wait again
            }
            if ($tlsWhy !== null) { // a TLS alert: the server refused the session, nothing was served
                throw new TransportError("the server refused the TLS session: $tlsWhy", $this->address(), false);
            }
            throw new TransportError('the connection was closed before the reply', $this->address(), true);
        }
    }

    public function write($buf)
    {
        if ($this->sock !== null) {
            $this->send($buf);
            return;
        }
        $waited = $this->tls === null; // plain TCP tries first, and waits only when it is full
        while ($buf !== '') {
            if (!$waited) {
                $this->await(false);
            }
            $waited = false;
            $tlsWhy = null;
            if ($this->tls === null) {
                $n = @fwrite($this->handle_, $buf);
                if ($n === 0) {
                    continue; // the socket buffer is full: wait until it takes more
                }
            } else {
                $n = self::keepingTlsReasons(fn () => @fwrite($this->handle_, $buf), $tlsWhy);
            }
            if ($n === false || $n === 0) {
                if ($tlsWhy === null && $this->tls !== null && $this->written === 0 && is_resource($this->handle_)) {
                    self::keepingTlsReasons(fn () => @fread($this->handle_, 1), $tlsWhy); // the alert, if it came
                }
                if ($tlsWhy !== null) { // TLS 1.3: the verdict on our certificate comes after the handshake
                    throw new TransportError("the server refused the TLS session: $tlsWhy", $this->address(), false);
                }
                throw new TransportError('the connection failed while sending', $this->address(), $this->written > 0);
            }
            $this->written += $n;
            if ($n === strlen($buf)) {
                return;
            }
            $buf = substr($buf, $n);
        }
    }

    /** One recv on the blocking descriptor, bounded by SO_RCVTIMEO (arm()). */
    private function receive(int $len): string
    {
        while (true) {
            $this->arm(SO_RCVTIMEO, true);
            $data = '';
            $n = @socket_recv($this->sock, $data, $len, 0);
            if ($n > 0) {
                return $data;
            }
            if ($n === false && $this->interrupted()) {
                continue; // the kernel's timeout (arm() tells a deadline from an early end) or a signal
            }
            throw new TransportError('the connection was closed before the reply', $this->address(), true);
        }
    }

    /** Sends all of $buf on the blocking descriptor, each send bounded by SO_SNDTIMEO. */
    private function send(string $buf): void
    {
        while (true) {
            $this->arm(SO_SNDTIMEO, false);
            $n = @socket_send($this->sock, $buf, strlen($buf), MSG_NOSIGNAL);
            if ($n === false) {
                if ($this->interrupted()) {
                    continue;
                }
                throw new TransportError('the connection failed while sending', $this->address(), $this->written > 0);
            }
            $this->written += $n;
            if ($n === strlen($buf)) {
                return;
            }
            $buf = substr($buf, $n);
        }
    }

    /** Whether the last failure on $sock was a timeout or a signal (then the call waits again). */
    private function interrupted(): bool
    {
        $error = socket_last_error($this->sock);
        socket_clear_error($this->sock);
        return $error === SOCKET_EAGAIN || $error === SOCKET_EWOULDBLOCK || $error === SOCKET_EINTR;
    }

    /**
     * Bounds the next blocking recv ($read) or send by the deadline: RpcTimeout when it has
     * passed; otherwise the kernel timeout is set to the time left, unless the one set already
     * ends within TIMEOUT_SLACK after the deadline and no earlier than half the time left.
     */
    private function arm(int $option, bool $read): void
    {
        $left = min($this->deadline - microtime(true), 86400.0); // no deadline (INF): a day
        if ($left <= 0) {
            throw $read ? new RpcTimeout('timed out waiting for the reply', $this->address(), true)
                : new RpcTimeout('timed out sending the request', $this->address(), $this->written > 0);
        }
        $set = $this->armed[$option] ?? null;
        if ($set === null || $set > $left + self::TIMEOUT_SLACK || $set < $left / 2) {
            $sec = (int) $left;
            $usec = max(1, (int) (($left - $sec) * 1e6)); // 0 s 0 us would mean no timeout at all
            if (!@socket_set_option($this->sock, SOL_SOCKET, $option, ['sec' => $sec, 'usec' => $usec])) {
                throw new TransportError('cannot set the socket timeout', $this->address(), !$read && $this->written > 0);
            }
            $this->armed[$option] = $sec + $usec / 1e6;
        }
    }

    /** Waits until the stream can be read ($read) or written, within the deadline. */
    private function await(bool $read): void
    {
        $streams = [$this->handle_];
        $none = null;
        $left = $this->deadline - microtime(true);
        $us = $left < 86400 ? (int) ($left * 1e6) : 86400000000; // no deadline (INF): a day
        $ready = $us <= 0 ? 0 : ($read
            ? @stream_select($streams, $none, $none, intdiv($us, 1000000), $us % 1000000)
            : @stream_select($none, $streams, $none, intdiv($us, 1000000), $us % 1000000));
        if ($ready === 0) {
            throw $read ? new RpcTimeout('timed out waiting for the reply', $this->address(), true)
                : new RpcTimeout('timed out sending the request', $this->address(), $this->written > 0);
        }
        if ($ready === false) {
            throw $read ? new TransportError('the connection was closed before the reply', $this->address(), true)
                : new TransportError('the connection failed while sending', $this->address(), $this->written > 0);
        }
    }

    /**
     * Runs the stream operation $op; $why is OpenSSL's reason when it failed in TLS ("certificate
     * verify failed", "tlsv13 alert certificate required"), which PHP gives only in a warning;
     * $warning is PHP's last warning, without its function-call prefix.
     */
    private static function keepingTlsReasons(callable $op, ?string &$why, ?string &$warning = null): mixed
    {
        $reasons = [];
        $warning = null;
        set_error_handler(static function (int $no, string $message) use (&$reasons, &$warning): bool {
            $warning = trim(preg_replace(['/^\w+\(\): /', '/\s+/'], ['', ' '], $message));
            if (preg_match_all('/error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^\r\n]+)/', $message, $m)) {
                array_push($reasons, ...array_map('trim', $m[1]));
            }
            return true;
        });
        try {
            return $op();
        } finally {
            restore_error_handler();
            $why = $reasons ? implode('; ', array_unique($reasons)) : null;
        }
    }
}
