<?php

namespace Soa\Tests;

use PHPUnit\Framework\TestCase;
use Soa\THeaderTransport;
use Thrift\Exception\TTransportException;
use Thrift\Protocol\TBinaryProtocol;
use Thrift\Protocol\TCompactProtocol;
use Thrift\Transport\TMemoryBuffer;
use Thrift\Type\TMessageType;

/** The THeader frame of registry/SCHEMA.md: bytes written, frames parsed, frames refused. */
final class THeaderTest extends TestCase
{
    public function testAFrameIsLaidOutAsTheSchemaSays(): void
    {
        $frame = THeaderTransport::frame('PAYLOAD', 7, 0, ['soa-deadline-ms' => '250']);
        // header: protocol 0, 0 transforms, info 1, 1 pair, "soa-deadline-ms", "250", padding
        $header = "\x00\x00\x01\x01\x0fsoa-deadline-ms\x03250";
        $header .= str_repeat("\0", (4 - strlen($header) % 4) % 4);
        $body = "\x0f\xff\x00\x00" . pack('N', 7) . pack('n', strlen($header) / 4) . $header . 'PAYLOAD';
        $this->assertSame(pack('N', strlen($body)) . $body, $frame);
        $this->assertSame(0, strlen($header) % 4);
        $parsed = THeaderTransport::parse(substr($frame, 4));
        $this->assertSame(['seqid' => 7, 'protocol' => 0, 'headers' => ['soa-deadline-ms' => '250'], 'payload' => 'PAYLOAD'], $parsed);
        // no headers: only the protocol id (compact, 2) and no transforms, padded to one word
        $this->assertSame("\x00\x00\x00\x0f\x0f\xff\x00\x00\x00\x00\x00\x00\x00\x01\x02\x00\x00\x00x", THeaderTransport::frame('x', 0, 2, []));
    }

    public function testARequestCarriesItsDeadlineFirstThenTheConnectionsHeaders(): void
    {
        $wire = new TMemoryBuffer();
        $t = new THeaderTransport($wire);
        $headers = ['soa-service' => 'bench', 'soa-instance' => 'i-1'];
        foreach ([11, 12] as $seqid) { // the second call reuses the encoded headers
            $t->setHeaders($headers, microtime(true) + 10);
            $p = new TBinaryProtocol($t);
            $p->writeMessageBegin('ping', TMessageType::CALL, $seqid);
            $p->writeMessageEnd();
            $t->flush();
            $frame = $wire->read(1 << 20);
            $parsed = THeaderTransport::parse(substr($frame, 4));
            $ms = $parsed['headers']['soa-deadline-ms'];
            $this->assertSame(['soa-deadline-ms', 'soa-service', 'soa-instance'], array_keys($parsed['headers']));
            $this->assertGreaterThan(9000, (int) $ms);
            $this->assertLessThanOrEqual(10000, (int) $ms);
            $this->assertSame(THeaderTransport::frame($parsed['payload'], $seqid, 0, ['soa-deadline-ms' => $ms] + $headers), $frame);
        }
        $t->setHeaders(['soa-service' => 'other']); // new headers, no deadline
        $p->writeMessageBegin('ping', TMessageType::CALL, 13);
        $p->writeMessageEnd();
        $t->flush();
        $frame = $wire->read(1 << 20);
        $this->assertSame(THeaderTransport::frame(substr($frame, -strlen($parsed['payload'])), 13, 0, ['soa-service' => 'other']), $frame);
    }

    public function testTheBlockKeptFromTheLastCallFollowsNewHeadersAndNewDeadlines(): void
    {
        $wire = new TMemoryBuffer();
        $t = new THeaderTransport($wire);
        $p = new TBinaryProtocol($t);
        $calls = [ // headers, seconds left, the deadline-ms range expected
            [['soa-service' => 'a'], 10, [9000, 10000]],
            [['soa-service' => 'a'], 10, [9000, 10000]], // the same block again
            [['soa-service' => 'b'], 10, [9000, 10000]], // new headers, the same milliseconds
            [['soa-service' => 'b'], 2, [1000, 2000]], // a new deadline
        ];
        foreach ($calls as [$headers, $left, [$low, $high]]) {
            $t->setHeaders($headers, microtime(true) + $left);
            $p->writeMessageBegin('ping', TMessageType::CALL, 1);
            $p->writeMessageEnd();
            $t->flush();
            $parsed = THeaderTransport::parse(substr($wire->read(1 << 20), 4));
            $this->assertSame($headers['soa-service'], $parsed['headers']['soa-service']);
            $ms = (int) $parsed['headers']['soa-deadline-ms'];
            $this->assertGreaterThan($low, $ms);
            $this->assertLessThanOrEqual($high, $ms);
        }
    }

    public function testRepliesThatArriveInOneReadAreEachServedWhole(): void
    {
        $wire = new TMemoryBuffer();
        $t = new THeaderTransport($wire);
        $p = new TBinaryProtocol($t);
        $reply = function (int $seqid, string $name): string {
            $buf = new TMemoryBuffer();
            $q = new TBinaryProtocol($buf);
            $q->writeMessageBegin($name, TMessageType::REPLY, $seqid);
            $q->writeMessageEnd();
            return THeaderTransport::frame($buf->getBuffer(), $seqid, 0, []);
        };
        $p->writeMessageBegin('first', TMessageType::CALL, 1);
        $t->flush();
        $wire->read(1 << 20);
        $wire->write($reply(1, 'first') . $reply(2, 'second')); // both come in one read
        $p->readMessageBegin($name, $type, $seqid);
        $this->assertSame(['first', 1], [$name, $seqid]);
        $p->writeMessageBegin('second', TMessageType::CALL, 2);
        $t->flush();
        $p->readMessageBegin($name, $type, $seqid); // from the bytes already read
        $this->assertSame(['second', 2], [$name, $seqid]);
    }

    public function testTheReplyBlockKeptFromTheLastReplyFollowsRepliesThatChangeIt(): void
    {
        $wire = new TMemoryBuffer();
        $t = new THeaderTransport($wire, THeaderTransport::PROTOCOL_BINARY, '127.0.0.1:1');
        $p = new TBinaryProtocol($t);
        $payload = function (int $seqid): string {
            $buf = new TMemoryBuffer();
            $q = new TBinaryProtocol($buf);
            $q->writeMessageBegin('m', TMessageType::REPLY, $seqid);
            $q->writeMessageEnd();
            return $buf->getBuffer();
        };
        $replies = [ // headers of each reply, in order; the plain block repeats around a late one
            [1, []], [2, []], [3, ['soa-error' => 'late']], [4, []], [5, ['x' => 'y']], [6, ['x' => 'y']],
        ];
        foreach ($replies as [$seqid, $headers]) {
            $p->writeMessageBegin('m', TMessageType::CALL, $seqid);
            $p->writeMessageEnd();
            $t->flush();
            $wire->read(1 << 20);
            $wire->write(THeaderTransport::frame($payload($seqid), $seqid, 0, $headers));
            try {
                $p->readMessageBegin($name, $type, $got);
                $this->assertSame([[], $seqid], [array_diff_key($headers, ['x' => 1]), $got]);
            } catch (\Soa\RpcTimeout $e) {
                $this->assertSame(['soa-error' => 'late'], $headers, 'refused as late');
            }
            $this->assertSame($headers, $t->replyHeaders());
        }
        // a kept block does not excuse a reply meant for another request
        $p->writeMessageBegin('m', TMessageType::CALL, 7);
        $p->writeMessageEnd();
        $t->flush();
        $wire->read(1 << 20);
        $wire->write(THeaderTransport::frame($payload(8), 8, 0, ['x' => 'y']));
        $this->expectExceptionMessage('seqid 8 to request 7');
        $p->readMessageBegin($name, $type, $got);
    }

    public function testDeadlineMsIsTheFloorOfWhatIsLeftAndAtLeastOne(): void
    {
        $this->assertSame(1500, THeaderTransport::deadlineMs(101.5009, 100.0));
        $this->assertSame(1, THeaderTransport::deadlineMs(100.0005, 100.0));
        $this->assertSame(1, THeaderTransport::deadlineMs(99.0, 100.0));
    }

    public function testTheSeqidIsReadFromThePayload(): void
    {
        foreach ([[TBinaryProtocol::class, 0], [TCompactProtocol::class, 2]] as [$class, $id]) {
            $buf = new TMemoryBuffer();
            $p = new $class($buf);
            $p->writeMessageBegin('method_name', TMessageType::CALL, 123456);
            $this->assertSame(123456, THeaderTransport::seqidOf($buf->getBuffer(), $id), $class);
        }
        $this->assertNull(THeaderTransport::seqidOf("\x80\x01", 0));
    }

    public static function broken(): array
    {
        $ok = substr(THeaderTransport::frame('P', 1, 0, ['k' => 'v']), 4);
        return [
            'short' => [substr($ok, 0, 6), 'bytes'],
            'magic' => ["\x0f\xfe" . substr($ok, 2), 'magic'],
            'header past the frame' => [substr($ok, 0, 8) . "\x7f\xff" . substr($ok, 10), 'words'],
            'transforms' => [substr($ok, 0, 8) . "\x00\x01" . "\x00\x01\x00\x00", 'transforms'],
            'unknown info block' => [substr($ok, 0, 8) . "\x00\x01" . "\x00\x00\x07\x00", 'info block 7'],
            'count past the header' => [substr($ok, 0, 8) . "\x00\x01" . "\x00\x00\x01\x7f", 'key-values'],
            'string past the header' => [substr($ok, 0, 8) . "\x00\x02" . "\x00\x00\x01\x01\x7f\x00\x00\x00", 'string of 127'],
            'runaway varint' => [substr($ok, 0, 8) . "\x00\x02" . "\x00\x00\x01\xff\xff\xff\xff\xff\xff\x00", 'varint'],
        ];
    }

    /** @dataProvider broken */
    public function testBrokenFramesAreRefusedWithoutReadingPastTheirBytes(string $body, string $why): void
    {
        try {
            THeaderTransport::parse($body);
            $this->fail('parsed');
        } catch (TTransportException $e) {
            $this->assertStringContainsString('bad THeader reply', $e->getMessage());
            $this->assertStringContainsString($why, $e->getMessage());
        }
    }

    public function testAReplyMeantForAnotherRequestIsRefused(): void
    {
        $wire = new TMemoryBuffer();
        $t = new THeaderTransport($wire);
        $p = new TBinaryProtocol($t);
        $p->writeMessageBegin('m', TMessageType::CALL, 5);
        $p->writeMessageEnd();
        $t->flush();
        $wire->read(1 << 20); // drop the request; answer with seqid 6
        $wire->write(THeaderTransport::frame('x', 6, 0, []));
        $this->expectException(TTransportException::class);
        $this->expectExceptionMessage('seqid 6 to request 5');
        $t->read(1);
    }

    public function testAPlainReplyToATheaderRequestIsRefused(): void
    {
        $wire = new TMemoryBuffer();
        $t = new THeaderTransport($wire);
        $wire->write("\x80\x01\x00\x02\x00\x00\x00\x01m");
        $this->expectExceptionMessage('a plain Thrift reply?');
        $t->read(1);
    }
}
