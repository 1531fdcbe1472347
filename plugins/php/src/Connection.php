<?php

namespace Soa;

use Thrift\Protocol\TBinaryProtocol;
use Thrift\Protocol\TCompactProtocol;
use Thrift\Protocol\TProtocol;
use Thrift\Transport\TBufferedTransport;
use Thrift\Transport\TFramedTransport;
use Thrift\Transport\TTransport;

/**
 * One open connection to one instance, in the wire format the instance registered: THeader when
 * it has "theader": true (then each call carries soa-deadline-ms, soa-service, soa-instance),
 * else plain Thrift in its protocol and transport (no metadata). Generated clients are built
 * once per connection and class. Used by one call at a time (Pool hands it out).
 */
final class Connection
{
    public bool $busy = false;
    public float $lastUsed;
    private TTransport $transport;
    private TProtocol $protocol;
    private ?THeaderTransport $header = null;
    /** @var array<class-string, object> */
    private array $clients = [];

    public function __construct(public readonly Instance $instance, public readonly Socket $socket, int $maxFrameBytes)
    {
        if ($instance->theader) {
            $this->header = new THeaderTransport($socket, $instance->protocol === 'compact'
                ? THeaderTransport::PROTOCOL_COMPACT : THeaderTransport::PROTOCOL_BINARY,
                $instance->address(), $maxFrameBytes);
            $this->transport = $this->header;
        } else {
            $this->transport = $instance->transport === 'framed'
                ? new TFramedTransport($socket) : new TBufferedTransport($socket, 8192, 8192);
        }
        $this->protocol = $instance->protocol === 'compact'
            ? new TCompactProtocol($this->transport) : new TBinaryProtocol($this->transport);
        $this->lastUsed = microtime(true);
    }

    /** What the connection's bytes look like; a registry change of any of these needs a new one. */
    public static function wire(Instance $i): string
    {
        return "{$i->protocol}/{$i->transport}/" . (int) $i->theader . '/' . (int) $i->tls;
    }

    /**
     * Prepares the next call: its deadline, and (THeader only) the metadata for $instance, the
     * registry's current value for this address.
     *
     * @param array<string, string> $extra more request keys (soa-caller, soa-trace-id)
     */
    public function begin(float $deadline, Instance $instance, array $extra = []): void
    {
        $this->socket->setDeadline($deadline);
        if ($this->header !== null) {
            $headers = ['soa-service' => $instance->service];
            if ($instance->id !== '') {
                $headers['soa-instance'] = $instance->id;
            }
            $this->header->setHeaders($headers + $extra, $deadline);
        }
    }

    /** The generated client of $class over this connection. */
    public function client(string $class): object
    {
        return $this->clients[$class] ??= new $class($this->protocol);
    }

    public function protocol(): TProtocol
    {
        return $this->protocol;
    }

    /** The key-values of the last THeader reply ([] for plain Thrift). */
    public function replyHeaders(): array
    {
        return $this->header?->replyHeaders() ?? [];
    }
}
