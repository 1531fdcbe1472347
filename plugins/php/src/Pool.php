<?php

namespace Soa;

/**
 * Open connections, at most one idle per instance (PHP makes one call at a time), reused until
 * idle_timeout passes, until a transport error (then closed, never reused), until the server is
 * seen to have closed it (checked after CHECK_AFTER idle seconds), or until the instance leaves
 * the registry or changes its wire format (retain()). With $persist, sockets are
 * persistent streams: at the end of the request they are let go of, not closed, and the next
 * request of the same process reconnects to the same stream (stale ones are detected and
 * replaced, see Socket::isStale). A connection still busy when the request ends (a fatal error
 * or max_execution_time mid-call) is closed then, so no half-read reply is ever handed on.
 */
final class Pool
{
    /**
     * Seconds of idleness after which a connection is checked (one poll) for a close by the
     * server before it carries a call; calls in a tight sequence skip the check.
     */
    public const CHECK_AFTER = 0.1;

    /** @var array<string, Connection> address => idle connection */
    private array $idle = [];
    /** @var array<int, Connection> spl_object_id => busy connection */
    private array $busy = [];
    private int $opened = 0;

    /** @param array|null $tls [ca, cert, key, server_name] for instances with "tls": true */
    public function __construct(
        private bool $persist = true,
        private float $idleTimeout = 60.0,
        private int $connectTimeoutMs = 250,
        private ?array $tls = null,
        private int $maxFrameBytes = 16 << 20,
    ) {
        $busy = &$this->busy;
        $idle = &$this->idle;
        register_shutdown_function(static function () use (&$busy, &$idle): void {
            foreach ($busy as $c) {
                $c->socket->close();
            }
            foreach ($idle as $c) {
                $c->socket->release(); // persistent ones stay open for the next request
            }
            $busy = $idle = [];
        });
    }

    public function __destruct()
    {
        foreach ($this->busy as $c) {
            $c->socket->close();
        }
        foreach ($this->idle as $c) {
            $c->socket->release();
        }
        $this->busy = $this->idle = [];
    }

    /**
     * A connection to $instance, open, for a call ending at $deadline.
     *
     * @throws TransportError (sent=false) when it cannot connect
     */
    public function acquire(Instance $instance, float $deadline): Connection
    {
        $address = $instance->address();
        $c = $this->idle[$address] ?? null;
        if ($c !== null) {
            unset($this->idle[$address]);
            if (($c->instance !== $instance && Connection::wire($c->instance) !== Connection::wire($instance))
                || ($idle = microtime(true) - $c->lastUsed) > $this->idleTimeout
                || ($idle > self::CHECK_AFTER && $c->socket->isStale())) {
                $c->socket->close();
                $c = null;
            }
        }
        if ($c === null) {
            $host = $instance->host;
            // a second connection while one is busy cannot share the persistent stream
            $persist = $this->persist && !$this->isBusy($address);
            $socket = new Socket($host, $instance->port, $persist, $instance->tls ? ($this->tls ?? []) : null,
                $this->connectTimeoutMs);
            $socket->setDeadline($deadline);
            $socket->open();
            $this->opened++;
            $c = new Connection($instance, $socket, $this->maxFrameBytes);
        }
        $c->busy = true;
        $this->busy[spl_object_id($c)] = $c;
        return $c;
    }

    /** $c's call ended with an answer: it may carry the next one. */
    public function release(Connection $c): void
    {
        unset($this->busy[spl_object_id($c)]);
        $c->busy = false;
        $c->lastUsed = microtime(true);
        $address = $c->instance->address();
        if (isset($this->idle[$address])) {
            $c->socket->close(); // one idle per instance is enough
            return;
        }
        $this->idle[$address] = $c;
    }

    /** $c saw a transport error: closed, never reused. */
    public function discard(Connection $c): void
    {
        unset($this->busy[spl_object_id($c)]);
        $c->busy = false;
        $c->socket->close();
    }

    /** Closes the idle connections of addresses not in $addresses (instances that left). */
    public function retain(array $addresses): void
    {
        $keep = array_flip($addresses);
        foreach ($this->idle as $address => $c) {
            if (!isset($keep[$address])) {
                $c->socket->close();
                unset($this->idle[$address]);
            }
        }
    }

    /** Connections this pool opened (a persistent stream picked up again counts as one). */
    public function opened(): int
    {
        return $this->opened;
    }

    /** @return string[] addresses with an idle connection */
    public function idleAddresses(): array
    {
        return array_keys($this->idle);
    }

    private function isBusy(string $address): bool
    {
        foreach ($this->busy as $c) {
            if ($c->instance->address() === $address) {
                return true;
            }
        }
        return false;
    }
}
