<?php

namespace Soa\Tests\Fixtures;

use Soa\THeaderTransport;
use Thrift\Protocol\TBinaryProtocol;
use Thrift\Transport\TMemoryBuffer;
use Thrift\Type\TMessageType;
use Thrift\Type\TType;

/**
 * The server side of TinyClient on one accepted connection, binary protocol, for the forked
 * servers of the tests. It answers "hello NAME from PORT" for every call until the peer
 * closes, in the format the first bytes show (plain buffered, or THeader). $behaviour:
 * 'answer'; 'close' (closes on the first request); 'hang' (reads, never answers); for THeader,
 * 'hang-after-first' and 'slow-after-first' (the connection's first call answered at once, the
 * next ones never, or after 0.4 s),
 * 'late' or 'wrong-target' (refuses with that soa-error), 'late-once' (refuses the first call
 * of the connection as late, answers the next ones). Each request's THeader key-values
 * are appended, as JSON lines, to $log when given.
 */
final class TinyServer
{
    public static function serve($conn, string $behaviour, int $port, ?string $log = null): void
    {
        stream_set_blocking($conn, true);
        stream_set_read_buffer($conn, 0); // fread returns what one recv gives, never waits for more
        $first = true;
        while (true) {
            $head = self::read($conn, 4);
            if ($head === null) {
                return;
            }
            if ($behaviour === 'close') {
                return;
            }
            if ($head[0] === "\0") { // THeader
                $len = unpack('N', $head)[1];
                $frame = THeaderTransport::parse(self::read($conn, $len) ?? '');
                if ($log !== null) {
                    file_put_contents($log, json_encode($frame['headers']) . "\n", FILE_APPEND);
                }
                $name = self::name($frame['payload']);
                if ($behaviour === 'hang' || ($behaviour === 'hang-after-first' && !$first)) {
                    sleep(30);
                }
                if ($behaviour === 'slow-after-first' && !$first) {
                    usleep(400000);
                }
                $refusal = in_array($behaviour, ['late', 'wrong-target'], true) ? ['soa-error' => $behaviour] : [];
                if ($behaviour === 'late-once' && $first) {
                    $refusal = ['soa-error' => 'late'];
                }
                $first = false;
                $reply = self::reply($name, $port);
                fwrite($conn, THeaderTransport::frame($reply, $frame['seqid'], 0, $refusal));
                continue;
            }
            // plain binary, buffered: read the message (args are one string field)
            $buf = $head;
            while (($name = self::name($buf, true)) === null) {
                $more = fread($conn, 8192);
                if ($more === '' || $more === false) {
                    return;
                }
                $buf .= $more;
            }
            if ($behaviour === 'hang') {
                sleep(30);
            }
            fwrite($conn, self::reply($name, $port));
        }
    }

    private static function read($conn, int $n): ?string
    {
        $out = '';
        while (strlen($out) < $n) {
            $chunk = fread($conn, $n - strlen($out));
            if ($chunk === '' || $chunk === false) {
                return null;
            }
            $out .= $chunk;
        }
        return $out;
    }

    /** The name argument of a whole hello message, or null when $buf is not whole yet. */
    private static function name(string $buf, bool $partial = false): ?string
    {
        try {
            $t = new TMemoryBuffer($buf);
            $p = new TBinaryProtocol($t);
            $p->readMessageBegin($fname, $mtype, $seqid);
            $p->readStructBegin($s);
            $name = '';
            while (true) {
                $p->readFieldBegin($f, $type, $id);
                if ($type === TType::STOP) {
                    break;
                }
                $p->readString($name);
            }
            return $name;
        } catch (\Throwable $e) {
            if ($partial) {
                return null;
            }
            throw $e;
        }
    }

    private static function reply(string $name, int $port): string
    {
        $t = new TMemoryBuffer();
        $p = new TBinaryProtocol($t);
        $p->writeMessageBegin('hello', TMessageType::REPLY, 7);
        $p->writeStructBegin('hello_result');
        $p->writeFieldBegin('success', TType::STRING, 0);
        $p->writeString("hello $name from $port");
        $p->writeFieldEnd();
        $p->writeFieldStop();
        $p->writeStructEnd();
        $p->writeMessageEnd();
        return $t->getBuffer();
    }
}
