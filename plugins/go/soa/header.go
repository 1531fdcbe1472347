package soa

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/apache/thrift/lib/go/thrift"
)

// THeader framing as soa speaks it (registry/SCHEMA.md, "Call metadata: THeader"): a frame is
// length u32 | 0x0FFF u16 | flags u16 | seqid u32 | header words u16 | header | payload, the
// header being a varint protocol id, a varint transform count (always 0) and key-value info
// blocks, padded with zeros to 4 bytes.
const (
	headerMagic     = 0x0FFF
	headerFixed     = 10 // what the length counts before the header block
	infoKeyValue    = 1
	protocolBinary  = 0
	protocolCompact = 2
)

// headerTransport carries one THeader frame per message under a Thrift protocol: writes gather
// the payload and Flush sends the whole frame in one write, with the connection's fixed info
// headers (encoded once) and the call's deadline; a read begins by taking the next whole frame
// off the socket, whose info headers are then in readHeaders. One call at a time uses it.
type headerTransport struct {
	nc          net.Conn
	r           *bufio.Reader
	protocolID  byte
	fixed       []byte // the encoded key-value pairs sent on every frame
	fixedCount  int
	deadlineMS  int64 // sent as soa-deadline-ms when > 0
	seq         uint32
	out         []byte // the payload being written
	frame       []byte // the frame sent last (its buffer is reused)
	in          []byte // the frame being read (its payload from pos on)
	pos         int
	maxFrame    int
	readHeaders thrift.THeaderMap
}

func newHeaderTransport(nc net.Conn, protocolID byte, maxFrame int32) *headerTransport {
	return &headerTransport{nc: nc, r: bufio.NewReaderSize(nc, 4096), protocolID: protocolID,
		maxFrame: int(maxFrame), out: make([]byte, 0, 512)}
}

// setFixed sets the info headers that every frame carries, in this order.
func (t *headerTransport) setFixed(pairs ...string) {
	t.fixed, t.fixedCount = t.fixed[:0], 0
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		t.fixed = appendString(appendString(t.fixed, pairs[i]), pairs[i+1])
		t.fixedCount++
	}
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Write adds payload bytes to the frame being written.
func (t *headerTransport) Write(p []byte) (int, error) {
	t.out = append(t.out, p...)
	return len(p), nil
}

// WriteByte adds one payload byte.
func (t *headerTransport) WriteByte(c byte) error {
	t.out = append(t.out, c)
	return nil
}

// WriteString adds a string's bytes to the payload.
func (t *headerTransport) WriteString(s string) (int, error) {
	t.out = append(t.out, s...)
	return len(s), nil
}

// Flush sends the payload written since the last Flush as one frame, in one write.
func (t *headerTransport) Flush(context.Context) error {
	count := t.fixedCount
	if t.deadlineMS > 0 {
		count++
	}
	// The frame is built in the buffer of the last one; the length and the header's size in
	// words are written in once the header block is known.
	frame := append(t.frame[:0], 0, 0, 0, 0)
	frame = binary.BigEndian.AppendUint16(frame, headerMagic)
	frame = binary.BigEndian.AppendUint16(frame, 0) // flags
	frame = binary.BigEndian.AppendUint32(frame, t.seq)
	frame = append(frame, 0, 0) // header words
	block := len(frame)
	frame = append(frame, t.protocolID, 0) // no transforms
	if count > 0 {
		frame = append(frame, infoKeyValue)
		frame = binary.AppendUvarint(frame, uint64(count))
		frame = append(frame, t.fixed...)
		if t.deadlineMS > 0 {
			frame = appendString(frame, headerDeadline)
			var digits [20]byte
			ms := strconv.AppendInt(digits[:0], t.deadlineMS, 10)
			frame = append(binary.AppendUvarint(frame, uint64(len(ms))), ms...)
		}
	}
	for (len(frame)-block)&3 != 0 {
		frame = append(frame, 0) // padding to whole words
	}
	binary.BigEndian.PutUint16(frame[block-2:], uint16((len(frame)-block)/4))
	frame = append(frame, t.out...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	t.out, t.frame = t.out[:0], frame
	_, err := t.nc.Write(frame)
	return err
}

// Read returns payload bytes of the current frame, taking the next frame when it is used up.
func (t *headerTransport) Read(p []byte) (int, error) {
	if t.pos == len(t.in) {
		if err := t.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, t.in[t.pos:])
	t.pos += n
	return n, nil
}

// ReadByte returns one payload byte.
func (t *headerTransport) ReadByte() (byte, error) {
	if t.pos == len(t.in) {
		if err := t.next(); err != nil {
			return 0, err
		}
	}
	c := t.in[t.pos]
	t.pos++
	return c, nil
}

// RemainingBytes is what is left of the current frame's payload: a string or container cannot
// claim more.
func (t *headerTransport) RemainingBytes() uint64 { return uint64(len(t.in) - t.pos) }

var errHeader = errors.New("malformed THeader frame")

// next reads one whole frame and decodes its header.
func (t *headerTransport) next() error {
	var prefix [4]byte
	if _, err := io.ReadFull(t.r, prefix[:]); err != nil {
		return err
	}
	size := int(binary.BigEndian.Uint32(prefix[:]))
	if size < headerFixed || size > t.maxFrame {
		return fmt.Errorf("%w: a frame of %d bytes (max %d)", errHeader, size, t.maxFrame)
	}
	if cap(t.in) < size {
		t.in = make([]byte, size)
	}
	frame := t.in[:size]
	if _, err := io.ReadFull(t.r, frame); err != nil {
		return err
	}
	if binary.BigEndian.Uint16(frame) != headerMagic {
		return fmt.Errorf("%w: magic %#x", errHeader, binary.BigEndian.Uint16(frame))
	}
	end := headerFixed + 4*int(binary.BigEndian.Uint16(frame[8:]))
	if end > size {
		return fmt.Errorf("%w: a header longer than its frame", errHeader)
	}
	headers, err := parseHeader(frame[headerFixed:end])
	if err != nil {
		return err
	}
	t.readHeaders = headers
	t.in, t.pos = frame, end
	return nil
}

// parseHeader decodes a header block's info headers (nil when there are none).
func parseHeader(b []byte) (thrift.THeaderMap, error) {
	pos := 0
	uvarint := func() (uint64, error) {
		v, n := binary.Uvarint(b[pos:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: a bad varint in the header", errHeader)
		}
		pos += n
		return v, nil
	}
	str := func() (string, error) {
		n, err := uvarint()
		if err != nil {
			return "", err
		}
		if n > uint64(len(b)-pos) {
			return "", fmt.Errorf("%w: a header string overruns the header", errHeader)
		}
		s := string(b[pos : pos+int(n)])
		pos += int(n)
		return s, nil
	}
	if _, err := uvarint(); err != nil { // the protocol id: the reply's is the request's
		return nil, err
	}
	transforms, err := uvarint()
	if err != nil {
		return nil, err
	}
	if transforms != 0 {
		return nil, fmt.Errorf("%w: %d transforms", errHeader, transforms)
	}
	var headers thrift.THeaderMap
	for pos < len(b) && b[pos] == infoKeyValue {
		pos++
		count, err := uvarint()
		if err != nil {
			return nil, err
		}
		if count > uint64(len(b)-pos)/2 {
			return nil, fmt.Errorf("%w: %d headers cannot fit", errHeader, count)
		}
		if headers == nil {
			headers = make(thrift.THeaderMap, count)
		}
		for range count {
			key, err := str()
			if err != nil {
				return nil, err
			}
			value, err := str()
			if err != nil {
				return nil, err
			}
			headers[key] = value
		}
	}
	return headers, nil
}

// Close closes the connection.
func (t *headerTransport) Close() error { return t.nc.Close() }

// Open is a no-op: the connection is open when the transport is made.
func (t *headerTransport) Open() error { return nil }

// IsOpen reports true: a closed connection shows as an error on the next read or write.
func (t *headerTransport) IsOpen() bool { return true }
