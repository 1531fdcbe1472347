<?php

namespace Soa;

use Thrift\Exception\TTransportException;
use Thrift\Transport\TTransport;

/**
 * Apache Thrift's header format (THeader), as registry/SCHEMA.md "Call metadata: THeader"
 * restricts it, around another transport (the socket): each message written between two
 * flush()es goes out as one frame
 *
 *   length u32 | 0x0FFF u16 | flags u16 (0) | seqid u32 | header_words u16 | header | payload
 *
 * whose header holds the protocol id, no transforms and one key-value block of the headers set
 * with setHeaders(). Reading takes one whole reply frame (checked against $maxFrameBytes and its
 * own lengths before anything is read), makes its key-values available as replyHeaders(), and
 * serves its payload. A reply's `soa-error` is turned into an exception before the payload is
 * read: `late` into RpcTimeout (refused, not executed), `wrong-target` into WrongTarget (not
 * executed; the caller retries elsewhere). A reply whose seqid is not the request's is a
 * protocol error (a reply meant for someone else). Apache Thrift's PHP library has no THeader
 * transport, hence this one.
 */
final class THeaderTransport extends TTransport
{
    public const MAGIC = 0x0FFF;
    public const PROTOCOL_BINARY = 0;
    public const PROTOCOL_COMPACT = 2;
    private const INFO_KEYVALUE = 1;
    /** The deadline's key, encoded (varint length, then the key). */
    private const DEADLINE_KEY = "\x0fsoa-deadline-ms";
    /** What one read asks the socket for: a whole reply frame, in most calls. */
    private const READ_CHUNK = 65536;

    private string $wbuf = '';
    private string $rbuf = '';
    private int $rpos = 0;
    private ?int $seqid = null;
    /** Bytes read past the last reply frame. */
    private string $pending = '';
    /** @var array<string, string> */
    private array $headers = [];
    /** $headers encoded as key-value pairs (set again only when they change), and their count. */
    private string $pairs = '';
    private int $pairCount = 0;
    private ?float $deadline = null;
    /** The last block written with a deadline, and its milliseconds: calls with the same
     * timeout mostly repeat it. */
    private string $deadlineBlock = '';
    private int $deadlineBlockMs = -1;
    /** @var array<string, string> */
    private array $replyHeaders = [];
    /** The header block of the last reply parsed, and what it says (parseReply()). */
    private ?string $lastReplyBlock = null;
    /** @var array{protocol: int, headers: array<string, string>} */
    private array $lastReply = [];

    public function __construct(
        private TTransport $inner,
        private int $protocolId = self::PROTOCOL_BINARY,
        private string $address = '',
        private int $maxFrameBytes = 16 << 20,
    ) {
    }

    /**
     * The key-values of the frames written from now on; with $deadline (a microtime(true)
     * instant), each frame also carries soa-deadline-ms = max(1, floor(ms left)) as it is written.
     *
     * @param array<string, string> $headers
     */
    public function setHeaders(array $headers, ?float $deadline = null): void
    {
        if ($headers !== $this->headers) { // calls on one connection mostly repeat them
            $this->headers = $headers;
            $this->pairs = self::pairs($headers);
            $this->pairCount = count($headers);
            $this->deadlineBlockMs = -1;
        }
        $this->deadline = $deadline;
    }

    /** soa-deadline-ms for $deadline at $now (registry/SCHEMA.md): at least 1. */
    public static function deadlineMs(float $deadline, float $now): int
    {
        return max(1, (int) floor(($deadline - $now) * 1000));
    }

    /** @return array<string, string> the key-values of the last reply read */
    public function replyHeaders(): array
    {
        return $this->replyHeaders;
    }

    public function isOpen()
    {
        return $this->inner->isOpen();
    }

    public function open()
    {
        $this->inner->open();
    }

    public function close()
    {
        $this->wbuf = $this->rbuf = $this->pending = '';
        $this->rpos = 0;
        $this->inner->close();
    }

    public function write($buf)
    {
        $this->wbuf .= $buf;
    }

    public function flush()
    {
        $payload = $this->wbuf;
        $this->wbuf = $this->rbuf = ''; // a new request: nothing left of the last reply is read
        $this->rpos = 0;
        $this->seqid = self::seqidOf($payload, $this->protocolId);
        if ($this->deadline === null) {
            $block = self::block($this->protocolId, $this->pairCount, $this->pairs);
        } else {
            $block = $this->deadlineBlock(self::deadlineMs($this->deadline, microtime(true)));
        }
        $this->inner->write(self::wrap($block, $payload, $this->seqid ?? 0));
        $this->inner->flush();
    }

    /** The header block for $ms left: the deadline first, then the connection's own pairs, as
     * frame() orders them. */
    private function deadlineBlock(int $ms): string
    {
        if ($ms !== $this->deadlineBlockMs) {
            $digits = (string) $ms;
            $this->deadlineBlock = self::block($this->protocolId, $this->pairCount + 1,
                self::DEADLINE_KEY . chr(strlen($digits)) . $digits . $this->pairs);
            $this->deadlineBlockMs = $ms;
        }
        return $this->deadlineBlock;
    }

    public function read($len)
    {
        if ($this->rpos >= strlen($this->rbuf)) {
            $this->readFrame();
        }
        $out = substr($this->rbuf, $this->rpos, $len);
        $this->rpos += strlen($out);
        return $out;
    }

    /**
     * $len bytes of the reply. The protocols read every field through readAll(), a few bytes at
     * a time; the frame is in memory, so they are cut from it here. TTransport's own readAll()
     * loops over read() through a string-function factory, several times the cost of the
     * socket's own share of a small call.
     */
    public function readAll($len)
    {
        if ($this->rpos >= strlen($this->rbuf)) {
            $this->readFrame();
        }
        if ($this->rpos + $len <= strlen($this->rbuf)) {
            $out = substr($this->rbuf, $this->rpos, $len);
            $this->rpos += $len;
            return $out;
        }
        return parent::readAll($len); // past the frame's end: the protocol asked for too much
    }

    /** One frame: $payload (one message) with $headers. */
    public static function frame(string $payload, int $seqid, int $protocolId, array $headers): string
    {
        return self::wrap(self::block($protocolId, count($headers), self::pairs($headers)), $payload, $seqid);
    }

    /** $headers as the pairs of a key-value info block: varint length, bytes, for each. */
    private static function pairs(array $headers): string
    {
        $out = '';
        foreach ($headers as $k => $v) {
            $k = (string) $k;
            $v = (string) $v;
            $out .= self::varint(strlen($k)) . $k . self::varint(strlen($v)) . $v;
        }
        return $out;
    }

    /** The header block: protocol id, no transforms, $count encoded $pairs (if any), padding. */
    private static function block(int $protocolId, int $count, string $pairs): string
    {
        $header = self::varint($protocolId) . "\0";
        if ($count > 0) {
            $header .= self::varint(self::INFO_KEYVALUE) . self::varint($count) . $pairs;
        }
        return $header . str_repeat("\0", (4 - strlen($header) % 4) % 4);
    }

    private static function wrap(string $block, string $payload, int $seqid): string
    {
        $size = 10 + strlen($block) + strlen($payload);
        return pack('NnnNn', $size, self::MAGIC, 0, $seqid, strlen($block) >> 2) . $block . $payload;
    }

    /**
     * Parses one frame's body (the bytes after the length).
     *
     * @return array{seqid: int, protocol: int, headers: array<string, string>, payload: string}
     * @throws TTransportException for a frame that breaks the format
     */
    public static function parse(string $body): array
    {
        $n = strlen($body);
        if ($n < 10) {
            throw self::bad("a THeader frame of $n bytes");
        }
        $fixed = unpack('nmagic/nflags/Nseqid/nwords', $body);
        if ($fixed['magic'] !== self::MAGIC) {
            throw self::bad(sprintf('magic 0x%04x, not 0x0fff', $fixed['magic']));
        }
        $end = 10 + $fixed['words'] * 4;
        if ($end > $n) {
            throw self::bad("a header of {$fixed['words']} words in a frame of $n bytes");
        }
        $pos = 10;
        $protocol = self::readVarint($body, $pos, $end);
        if (self::readVarint($body, $pos, $end) !== 0) {
            throw self::bad('transforms are not supported');
        }
        $headers = [];
        while ($pos < $end) {
            $id = self::readVarint($body, $pos, $end);
            if ($id === 0) {
                break; // padding
            }
            if ($id !== self::INFO_KEYVALUE) {
                throw self::bad("unknown info block $id");
            }
            $count = self::readVarint($body, $pos, $end);
            if ($count > ($end - $pos) / 2) {
                throw self::bad("$count key-values in " . ($end - $pos) . ' bytes');
            }
            for ($i = 0; $i < $count; $i++) {
                $k = self::readString($body, $pos, $end);
                $headers[$k] = self::readString($body, $pos, $end);
            }
        }
        return ['seqid' => $fixed['seqid'], 'protocol' => $protocol, 'headers' => $headers,
            'payload' => (string) substr($body, $end)];
    }

    /** One reply frame, taken with as few reads as it arrived in (one, mostly). */
    private function readFrame(): void
    {
        $buf = $this->pending;
        while (strlen($buf) < 4) {
            $buf .= $this->more();
        }
        $len = unpack('N', $buf)[1];
        if ($len > $this->maxFrameBytes || ($len >> 24) !== 0) {
            throw self::bad(sprintf('a reply frame of %d bytes (starts 0x%08x; a plain Thrift reply?)', $len, $len));
        }
        $end = 4 + $len;
        while (strlen($buf) < $end) {
            $buf .= $this->more($end - strlen($buf));
        }
        $this->pending = strlen($buf) > $end ? substr($buf, $end) : '';
        $frame = $this->parseReply(substr($buf, 4, $len));
        if ($this->seqid !== null && $frame['seqid'] !== $this->seqid) {
            throw self::bad("a reply with seqid {$frame['seqid']} to request {$this->seqid}");
        }
        $this->replyHeaders = $frame['headers'];
        $this->rbuf = $frame['payload'];
        $this->rpos = 0;
        $error = $frame['headers']['soa-error'] ?? null;
        if ($error !== null) {
            $this->rbuf = ''; // the refusal's payload is not for the caller's protocol to read
        }
        if ($error === 'late') {
            throw new RpcTimeout('the server refused the call unexecuted: its deadline had passed on arrival',
                $this->address, true, null, true);
        }
        if ($error === 'wrong-target') {
            throw new WrongTarget('this address now serves another service or instance; the call was not executed',
                $this->address);
        }
    }

    /**
     * parse() for a reply frame's body, with the last reply's header block kept decoded: a
     * server's replies mostly repeat it (its plain replies carry no key-values at all).
     */
    private function parseReply(string $body): array
    {
        if (strlen($body) >= 10 && strncmp($body, "\x0f\xff", 2) === 0) {
            $end = 10 + 4 * unpack('n', $body, 8)[1];
            if ($end <= strlen($body) && substr($body, 10, $end - 10) === $this->lastReplyBlock) {
                return ['seqid' => unpack('N', $body, 4)[1], 'protocol' => $this->lastReply['protocol'],
                    'headers' => $this->lastReply['headers'], 'payload' => (string) substr($body, $end)];
            }
        }
        $frame = self::parse($body);
        $this->lastReplyBlock = substr($body, 10, strlen($body) - strlen($frame['payload']) - 10);
        $this->lastReply = ['protocol' => $frame['protocol'], 'headers' => $frame['headers']];
        return $frame;
    }

    private function more(int $want = 0): string
    {
        $data = $this->inner->read(max($want, self::READ_CHUNK));
        if ($data === '') {
            throw new TTransportException('soa: the connection closed inside a THeader reply',
                TTransportException::END_OF_FILE);
        }
        return $data;
    }

    /** The seqid of the message at the start of $payload; null when it cannot be read. */
    public static function seqidOf(string $payload, int $protocolId): ?int
    {
        if ($protocolId === self::PROTOCOL_COMPACT) {
            $pos = 2;
            return strlen($payload) > 2 ? self::readVarint($payload, $pos, strlen($payload)) & 0xffffffff : null;
        }
        if (strlen($payload) < 8) {
            return null;
        }
        $first = unpack('N', $payload)[1];
        if ($first & 0x80000000) { // strict: version|type, name, seqid
            $at = 8 + unpack('N', $payload, 4)[1];
        } else { // old: name, type byte, seqid
            $at = 4 + $first + 1;
        }
        return strlen($payload) >= $at + 4 ? unpack('N', $payload, $at)[1] : null;
    }

    public static function varint(int $n): string
    {
        $out = '';
        while ($n > 0x7f) {
            $out .= chr(($n & 0x7f) | 0x80);
            $n >>= 7;
        }
        return $out . chr($n);
    }

    private static function readVarint(string $buf, int &$pos, int $end): int
    {
        $n = 0;
        for ($shift = 0; $shift < 35; $shift += 7) {
            if ($pos >= $end) {
                throw self::bad('a varint runs past the header');
            }
            $b = ord($buf[$pos++]);
            $n |= ($b & 0x7f) << $shift;
            if ($b < 0x80) {
                return $n;
            }
        }
        throw self::bad('a varint longer than 5 bytes');
    }

    private static function readString(string $buf, int &$pos, int $end): string
    {
        $len = self::readVarint($buf, $pos, $end);
        if ($len > $end - $pos) {
            throw self::bad("a string of $len bytes with " . ($end - $pos) . ' left');
        }
        $s = substr($buf, $pos, $len);
        $pos += $len;
        return $s;
    }

    private static function bad(string $what): TTransportException
    {
        return new TTransportException("soa: bad THeader reply: $what", TTransportException::UNKNOWN);
    }
}
