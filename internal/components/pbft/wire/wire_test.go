package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// TestRoundTripRandom: Decode(Append(m)) == m for random messages of every
// kind, nested ones included; the encoding is deterministic, Signable is
// its prefix and leaves out only the top-level Auth.
func TestRoundTripRandom(t *testing.T) {
	g := newGen(1)
	for i := range 10000 {
		m := g.message(3)
		b := Append(nil, &m)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("message %d (%v): %v", i, m.Kind, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("message %d (%v): decoded\n%+v\nwant\n%+v", i, m.Kind, got, m)
		}
		if again := Append(nil, &got); !bytes.Equal(again, b) {
			t.Fatalf("message %d: encoding not deterministic", i)
		}
		s := Signable(nil, &m)
		if !bytes.HasPrefix(b, s) {
			t.Fatalf("message %d: signable bytes are not a prefix of the encoding", i)
		}
		noAuth := m
		noAuth.Auth = protocol.Auth{}
		if !bytes.Equal(Signable(nil, &noAuth), s) {
			t.Fatalf("message %d: signable bytes depend on Auth", i)
		}
	}
}

func TestRoundTripReal(t *testing.T) {
	for _, m := range realMessages() {
		b := Append([]byte("prefix"), &m)
		got, err := Decode(b[len("prefix"):])
		if err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v: decoded %+v, want %+v", m.Kind, got, m)
		}
	}
}

// TestSignableCoversNestedAuth: a nested checkpoint's signature is in the
// view change's signable bytes.
func TestSignableCoversNestedAuth(t *testing.T) {
	vc := viewChange(1, 3)
	before := Signable(nil, &vc)
	vc.ViewChange.Proof[1].Auth.Sig[5] ^= 1
	if bytes.Equal(before, Signable(nil, &vc)) {
		t.Fatal("a nested checkpoint's signature is not in the signable bytes")
	}
}

// TestDecodedDoesNotAliasInput: the caller may reuse its buffer (a frame
// reader does), and appending to a decoded slice does not overwrite the
// next field.
func TestDecodedDoesNotAliasInput(t *testing.T) {
	m := prePrepare(2, 4)
	b := Append(nil, &m)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xff
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatal("decoded message changed with its input")
	}
	_ = append(got.Batch[0].Op, 'x', 'y', 'z')
	if !reflect.DeepEqual(got, m) {
		t.Fatal("appending to a decoded op overwrote the message")
	}
}

// TestTruncatedIsError: every proper prefix of every real message is an
// error (never a panic), and so is any trailing byte.
func TestTruncatedIsError(t *testing.T) {
	for _, m := range realMessages() {
		b := Append(nil, &m)
		for n := range len(b) {
			if _, err := Decode(b[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v cut to %d of %d bytes: %v", m.Kind, n, len(b), err)
			}
		}
		if _, err := Decode(append(b, 0)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("%v with a trailing byte: %v", m.Kind, err)
		}
	}
}

func TestNonCanonicalIsError(t *testing.T) {
	m := protocol.Message{Kind: protocol.KindPrepare, From: 1}
	b := Append(nil, &m)
	// b: version, kind, flags, from=1, view, seq, ...
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name, field string
		b           []byte
	}{
		{"non-minimal uvarint", "from", cat(b[:3], []byte{0x81, 0x00}, b[4:])},
		{"unknown flag", "flags", cat(b[:2], []byte{0x80}, b[3:])},
		{"zero digest marked present", "digest", cat(b[:2], []byte{flagDigest}, b[3:6], make([]byte, 32), b[6:])},
		{"version", "version", cat([]byte{2}, b[1:])},
	} {
		_, err := Decode(c.b)
		var e *Error
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &e) || e.Field != c.field {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	big := append([]byte{Version, byte(protocol.KindPrepare), 0}, binary.AppendUvarint(nil, 1<<32)...)
	if _, err := Decode(big); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "from") {
		t.Errorf("from above 32 bits: %v", err)
	}
}

// TestLimits: a message over a limit is an ErrLimit naming the field.
func TestLimits(t *testing.T) {
	big := func(n int) []byte { return make([]byte, n) }
	many := func(n int) []protocol.Request { return make([]protocol.Request, n) }
	msgs := func(n int) []protocol.Message { return make([]protocol.Message, n) }
	vcWith := func(vc *protocol.ViewChange) protocol.Message {
		return protocol.Message{Kind: protocol.KindViewChange, ViewChange: vc}
	}
	nested := protocol.Message{Kind: protocol.KindNewView}
	for range MaxDepth + 1 {
		nested = protocol.Message{Kind: protocol.KindNewView, NewView: &protocol.NewView{ViewChanges: []protocol.Message{nested}}}
	}
	for _, c := range []struct {
		field string
		m     protocol.Message
	}{
		{"batch", protocol.Message{Batch: many(MaxBatch + 1)}},
		{"request.op", protocol.Message{Request: &protocol.Request{Op: big(MaxOp + 1)}}},
		{"batch[2].op", protocol.Message{Batch: []protocol.Request{{}, {}, {Op: big(MaxOp + 1)}}}},
		{"reply.result", protocol.Message{Reply: &protocol.Reply{Result: big(MaxOp + 1)}}},
		{"view-change.proof", vcWith(&protocol.ViewChange{Proof: msgs(MaxNested + 1)})},
		{"view-change.proof[1].batch", vcWith(&protocol.ViewChange{Proof: []protocol.Message{{}, {Batch: many(MaxBatch + 1)}}})},
		{"view-change.prepared", vcWith(&protocol.ViewChange{Prepared: make([]protocol.Prepared, MaxPrepared+1)})},
		{"view-change.prepared[0].q", vcWith(&protocol.ViewChange{Prepared: []protocol.Prepared{{Q: make([]protocol.PrePrepared, MaxDigests+1)}}})},
		{"view-change.prepared[0].batches[0].batch", vcWith(&protocol.ViewChange{Prepared: []protocol.Prepared{{
			Batches: []protocol.BatchOf{{Batch: many(MaxBatch + 1)}}}}})},
		{"new-view.pre-prepares", protocol.Message{NewView: &protocol.NewView{PrePrepares: msgs(MaxNested + 1)}}},
		{"auth.macs", protocol.Message{Auth: protocol.Auth{MACs: make([][]byte, MaxMACs+1)}}},
		{"auth.macs[1]", protocol.Message{Auth: protocol.Auth{MACs: [][]byte{nil, big(MaxMAC + 1)}}}},
		{"auth.sig", protocol.Message{Auth: protocol.Auth{Sig: big(MaxSig + 1)}}},
		{"new-view.view-changes[0].new-view.view-changes[0].new-view.view-changes[0].new-view.view-changes[0].new-view.view-changes[0]", nested},
	} {
		_, err := Decode(Append(nil, &c.m))
		var e *Error
		if !errors.Is(err, ErrLimit) || !errors.As(err, &e) || e.Field != c.field {
			t.Errorf("%s: %v", c.field, err)
		}
	}
	if _, err := Decode(make([]byte, MaxMessageBytes+1)); !errors.Is(err, ErrLimit) {
		t.Errorf("huge message: %v", err)
	}
	// At the limits everything decodes.
	ok := protocol.Message{Batch: many(MaxBatch), Request: &protocol.Request{Op: big(MaxOp)},
		Auth: protocol.Auth{MACs: [][]byte{big(MaxMAC)}, Sig: big(MaxSig)}}
	ok.Batch[0].Op = big(1)
	if _, err := Decode(Append(nil, &ok)); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

// TestClaimsCostNothing: a short input that claims many elements is
// rejected before anything is allocated for them.
func TestClaimsCostNothing(t *testing.T) {
	for _, claim := range []protocol.Message{
		{Batch: make([]protocol.Request, MaxBatch)},
		{NewView: &protocol.NewView{ViewChanges: make([]protocol.Message, MaxNested)}},
		{ViewChange: &protocol.ViewChange{Prepared: make([]protocol.Prepared, MaxPrepared)}},
		{Auth: protocol.Auth{MACs: make([][]byte, MaxMACs)}},
		{State: make([]byte, 1<<20)},
	} {
		b := Append(nil, &claim)
		b = b[:len(b)*1/4] // the count survives, most elements do not
		allocated := testing.AllocsPerRun(10, func() { _, _ = Decode(b) })
		var ms runtimeBytes
		ms.measure(func() { _, _ = Decode(b) })
		if ms.bytes > 4*len(b)+8<<10 {
			t.Errorf("a %d-byte input claiming more allocated %d bytes (%v allocations)", len(b), ms.bytes, allocated)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	var payloads [][]byte
	for i, m := range realMessages() {
		p := Append(nil, &m)
		if i == 3 {
			p = bytes.Repeat([]byte{7}, 300<<10) // grows the reader's buffer past a step
		}
		payloads = append(payloads, p)
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFrame(&buf, nil); err != nil {
		t.Fatal(err)
	}
	payloads = append(payloads, nil)
	for _, r := range []io.Reader{bytes.NewReader(buf.Bytes()), iotest.OneByteReader(bytes.NewReader(buf.Bytes()))} {
		fr := NewFrameReader(r, 0)
		for i, want := range payloads {
			got, err := fr.Next()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
			}
		}
		if _, err := fr.Next(); err != io.EOF {
			t.Fatalf("after the last frame: %v", err)
		}
	}
	// Cut within a frame.
	fr := NewFrameReader(bytes.NewReader(buf.Bytes()[:10]), 0)
	if _, err := fr.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut frame: %v", err)
	}
	// Over the reader's maximum, and the writer's.
	var small bytes.Buffer
	_ = WriteFrame(&small, make([]byte, 101))
	if _, err := NewFrameReader(&small, 100).Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	if err := WriteFrame(io.Discard, make([]byte, MaxMessageBytes+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized write: %v", err)
	}
}

// TestFrameClaimCostsNothing: a header announcing 16 MiB followed by a
// few bytes allocates for the bytes, not the claim.
func TestFrameClaimCostsNothing(t *testing.T) {
	in := binary.BigEndian.AppendUint32(nil, MaxMessageBytes)
	in = append(in, make([]byte, 1000)...)
	var ms runtimeBytes
	ms.measure(func() {
		_, err := NewFrameReader(bytes.NewReader(in), 0).Next()
		if err != io.ErrUnexpectedEOF {
			t.Errorf("cut frame: %v", err)
		}
	})
	if ms.bytes > 256<<10 {
		t.Fatalf("allocated %d bytes for a 1000-byte frame claiming 16 MiB", ms.bytes)
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range realMessages() {
		f.Add(Append(nil, &m))
	}
	g := newGen(7)
	for range 20 {
		m := g.message(2)
		f.Add(Append(nil, &m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) {
				t.Fatalf("error of neither kind: %v", err)
			}
			return
		}
		// Canonical: what decodes re-encodes to the very bytes.
		if again := Append(nil, &m); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to\n% x\nnot\n% x", m, again, b)
		}
		if !bytes.HasPrefix(b, Signable(nil, &m)) {
			t.Fatal("signable bytes are not a prefix")
		}
	})
}

func BenchmarkPrePrepare64(b *testing.B) {
	m := prePrepare(64, 100)
	buf := Append(nil, &m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], &m)
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "wire-bytes")
}

func BenchmarkAppendPrePrepare64(b *testing.B) {
	m := prePrepare(64, 100)
	buf := Append(nil, &m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], &m)
	}
}

func BenchmarkDecodePrePrepare64(b *testing.B) {
	m := prePrepare(64, 100)
	buf := Append(nil, &m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
