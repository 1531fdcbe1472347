package soa

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
)

// pipeHeader is a headerTransport on one end of an in-memory connection, and the other end.
func pipeHeader(t *testing.T) (*headerTransport, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return newHeaderTransport(a, protocolBinary, 1<<16), b
}

func TestHeaderFrameRoundTrip(t *testing.T) {
	tr, peer := pipeHeader(t)
	tr.setFixed(headerService, "echo", headerInstance, "", headerCaller, "tests")
	tr.seq, tr.deadlineMS = 7, 1500
	frames := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 512)
		n, _ := peer.Read(buf)
		frames <- buf[:n]
	}()
	_, _ = tr.Write([]byte("payload"))
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	frame := <-frames
	// The frame read back by the same decoder: the info headers in order, then the payload.
	back, other := pipeHeader(t)
	go func() { _, _ = other.Write(frame) }()
	got := make([]byte, 7)
	if _, err := back.Read(got); err != nil || string(got) != "payload" {
		t.Fatalf("payload %q, %v", got, err)
	}
	want := map[string]string{headerService: "echo", headerCaller: "tests", headerDeadline: "1500"}
	if len(back.readHeaders) != len(want) {
		t.Fatalf("headers %v, want %v", back.readHeaders, want)
	}
	for k, v := range want {
		if back.readHeaders[k] != v {
			t.Fatalf("headers %v, want %v", back.readHeaders, want)
		}
	}
	words := int(binary.BigEndian.Uint16(frame[12:]))
	if binary.BigEndian.Uint32(frame[8:]) != 7 || len(frame) != 14+4*words+len("payload") {
		t.Fatalf("seqid or header padding wrong: % x", frame)
	}
}

func TestMalformedHeaderFramesAreRefused(t *testing.T) {
	frame := func(size uint32, magic uint16, words uint16, header ...byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, size)
		b = binary.BigEndian.AppendUint16(b, magic)
		b = append(b, 0, 0, 0, 0, 0, 1)
		b = binary.BigEndian.AppendUint16(b, words)
		return append(b, header...)
	}
	cases := map[string][]byte{
		"too large":             frame(1<<20, headerMagic, 1, 0, 0, 0, 0),
		"too small":             frame(4, headerMagic, 0),
		"not THeader":           frame(14, 0x8001, 1, 0, 0, 0, 0),
		"header past the frame": frame(14, headerMagic, 9, 0, 0, 0, 0),
		"a transform":           frame(14, headerMagic, 1, 0, 1, 0, 0),
		"too many headers":      frame(18, headerMagic, 2, 0, 0, infoKeyValue, 200, 1, 'k', 1, 'v'),
		"a string overruns":     frame(18, headerMagic, 2, 0, 0, infoKeyValue, 1, 9, 'k', 1, 'v'),
	}
	for name, data := range cases {
		tr, peer := pipeHeader(t)
		go func() { _, _ = peer.Write(data) }()
		_, err := tr.Read(make([]byte, 1))
		if !errors.Is(err, errHeader) {
			t.Errorf("%s: got %v, want a malformed THeader frame error", name, err)
		}
	}
}
