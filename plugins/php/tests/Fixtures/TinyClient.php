<?php

namespace Soa\Tests\Fixtures;

use Thrift\Exception\TApplicationException;
use Thrift\Protocol\TProtocol;
use Thrift\Type\TMessageType;
use Thrift\Type\TType;

/**
 * Shaped like an Apache-generated client of `service Tiny { string hello(1: string name) }`:
 * one method, written and read with the protocol it is given.
 */
final class TinyClient
{
    public function __construct(private TProtocol $protocol)
    {
    }

    public function hello(string $name): string
    {
        $p = $this->protocol;
        $p->writeMessageBegin('hello', TMessageType::CALL, 7);
        $p->writeStructBegin('hello_args');
        $p->writeFieldBegin('name', TType::STRING, 1);
        $p->writeString($name);
        $p->writeFieldEnd();
        $p->writeFieldStop();
        $p->writeStructEnd();
        $p->writeMessageEnd();
        $p->getTransport()->flush();

        $p->readMessageBegin($fname, $mtype, $seqid);
        if ($mtype === TMessageType::EXCEPTION) {
            $x = new TApplicationException();
            $x->read($p);
            $p->readMessageEnd();
            throw $x;
        }
        $p->readStructBegin($sname);
        $out = null;
        while (true) {
            $p->readFieldBegin($f, $type, $id);
            if ($type === TType::STOP) {
                break;
            }
            if ($id === 0 && $type === TType::STRING) {
                $p->readString($out);
            } else {
                $p->skip($type);
            }
            $p->readFieldEnd();
        }
        $p->readStructEnd();
        $p->readMessageEnd();
        return $out;
    }
}
