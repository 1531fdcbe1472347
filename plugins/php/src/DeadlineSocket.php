<?php

namespace Soa;

use Thrift\Exception\TTransportException;
use Thrift\Transport\TSocket;

/**
 * A TSocket whose reads and writes share one deadline for the whole call (TSocket's own
 * timeouts apply to each read or write).
 */
final class DeadlineSocket extends TSocket
{
    private ?float $deadline = null; // null: TSocket's own timeouts only

    /** The call must end within $ms milliseconds from now. */
    public function setDeadline(int $ms): void
    {
        $this->deadline = microtime(true) + $ms / 1000;
    }

    public function read($len)
    {
        if ($this->deadline !== null) {
            $this->setRecvTimeout($this->remaining());
        }
        return parent::read($len);
    }

    public function write($buf)
    {
        if ($this->deadline !== null) {
            $this->setSendTimeout($this->remaining());
        }
        parent::write($buf);
    }

    private function remaining(): int
    {
        $ms = (int) ceil(($this->deadline - microtime(true)) * 1000);
        if ($ms <= 0) {
            throw new TTransportException('soa: the call timed out', TTransportException::TIMED_OUT);
        }
        return $ms;
    }
}
