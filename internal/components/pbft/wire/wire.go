package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// Version is the encoding's first byte.
const Version byte = 1

// Limits: Decode rejects a message that claims more (ErrLimit).
const (
	MaxMessageBytes = 16 << 20 // a whole encoded message (and a frame)
	MaxBatch        = 4096     // requests in one batch
	MaxNested       = 1024     // messages in a view change's proof, a new view's view changes or pre-prepares
	MaxOp           = 1 << 20  // a request's op, a reply's result
	MaxState        = MaxMessageBytes
	MaxPrepared     = 4096 // entries in a view change's Prepared
	MaxDigests      = 1024 // pre-prepared digests (Q) and batches of one Prepared entry
	MaxMACs         = 1024 // MACs in an authenticator
	MaxMAC          = 64   // bytes of one MAC
	MaxSig          = 256  // bytes of a signature
	MaxDepth        = 4    // nesting: a new view's view change's checkpoint is depth 2
)

// Layout (uvarints are minimal; bytes are a uvarint length then the bytes):
//
//	message   = Version body(with auth)
//	signable  = Version body(without auth)          (a prefix of message)
//	body      = kind u8, flags u8, from uvarint (≤ 2^32-1), view uvarint,
//	            seq uvarint, [digest 32 bytes]       (flag: nonzero digest)
//	            batch, [request], [reply], [view-change], [new-view] (flags)
//	            state bytes, [auth]
//	batch     = uvarint count, request...
//	request   = client uvarint, timestamp uvarint, op bytes
//	reply     = client uvarint, timestamp uvarint, view uvarint, result bytes
//	view-change = stable uvarint, stable digest 32 bytes,
//	            uvarint count, body(with auth)...   (proof)
//	            uvarint count, prepared...
//	prepared  = seq uvarint, pview uvarint, pdigest 32 bytes,
//	            uvarint count, (view uvarint, digest 32 bytes)...   (Q)
//	            uvarint count, (digest 32 bytes, batch)...          (batches)
//	new-view  = uvarint count, body(with auth)...   (view changes)
//	            uvarint count, body(with auth)...   (pre-prepares)
//	auth      = uvarint count, MAC bytes..., signature bytes
//
// Nested messages keep their own authenticators, in the signable bytes
// too: a view change carries the checkpoints' signatures.
const (
	flagDigest byte = 1 << iota
	flagRequest
	flagReply
	flagViewChange
	flagNewView
	flagsKnown = flagDigest | flagRequest | flagReply | flagViewChange | flagNewView
)

// Minimal encoded sizes: a count is checked against the bytes left
// divided by these before anything is allocated.
const (
	minRequest     = 4  // client, timestamp, op length, MAC count
	minMessage     = 9  // kind, flags, from, view, seq, batch, state, MAC count, signature
	minPrepared    = 36 // seq, pview, pdigest, two counts
	minPrePrepared = 33 // view, digest
	minBatchOf     = 33 // digest, count
	minMAC         = 1  // length
)

// Append appends m's encoding to dst.
func Append(dst []byte, m *protocol.Message) []byte {
	dst = append(dst, Version)
	return appendBody(dst, m, true)
}

// Signable appends the bytes that m's MACs and signature cover: its
// encoding without its own Auth (a prefix of Append's). Nested messages
// keep theirs.
func Signable(dst []byte, m *protocol.Message) []byte {
	dst = append(dst, Version)
	return appendBody(dst, m, false)
}

func appendBody(b []byte, m *protocol.Message, withAuth bool) []byte {
	var flags byte
	if m.Digest != (protocol.Digest{}) {
		flags |= flagDigest
	}
	if m.Request != nil {
		flags |= flagRequest
	}
	if m.Reply != nil {
		flags |= flagReply
	}
	if m.ViewChange != nil {
		flags |= flagViewChange
	}
	if m.NewView != nil {
		flags |= flagNewView
	}
	b = append(b, byte(m.Kind), flags)
	b = binary.AppendUvarint(b, uint64(m.From))
	b = binary.AppendUvarint(b, uint64(m.View))
	b = binary.AppendUvarint(b, uint64(m.Seq))
	if flags&flagDigest != 0 {
		b = append(b, m.Digest[:]...)
	}
	b = appendBatch(b, m.Batch)
	if r := m.Request; r != nil {
		b = appendRequest(b, r)
	}
	if r := m.Reply; r != nil {
		b = binary.AppendUvarint(b, r.Client)
		b = binary.AppendUvarint(b, r.Timestamp)
		b = binary.AppendUvarint(b, uint64(r.View))
		b = appendBytes(b, r.Result)
	}
	if vc := m.ViewChange; vc != nil {
		b = binary.AppendUvarint(b, uint64(vc.Stable))
		b = append(b, vc.StableDigest[:]...)
		b = appendMessages(b, vc.Proof)
		b = binary.AppendUvarint(b, uint64(len(vc.Prepared)))
		for i := range vc.Prepared {
			p := &vc.Prepared[i]
			b = binary.AppendUvarint(b, uint64(p.Seq))
			b = binary.AppendUvarint(b, uint64(p.PView))
			b = append(b, p.PDigest[:]...)
			b = binary.AppendUvarint(b, uint64(len(p.Q)))
			for _, q := range p.Q {
				b = binary.AppendUvarint(b, uint64(q.View))
				b = append(b, q.Digest[:]...)
			}
			b = binary.AppendUvarint(b, uint64(len(p.Batches)))
			for j := range p.Batches {
				b = append(b, p.Batches[j].Digest[:]...)
				b = appendBatch(b, p.Batches[j].Batch)
			}
		}
	}
	if nv := m.NewView; nv != nil {
		b = appendMessages(b, nv.ViewChanges)
		b = appendMessages(b, nv.PrePrepares)
	}
	b = appendBytes(b, m.State)
	if withAuth {
		b = binary.AppendUvarint(b, uint64(len(m.Auth.MACs)))
		for _, mac := range m.Auth.MACs {
			b = appendBytes(b, mac)
		}
		b = appendBytes(b, m.Auth.Sig)
	}
	return b
}

func appendRequest(b []byte, r *protocol.Request) []byte {
	b = binary.AppendUvarint(b, r.Client)
	b = binary.AppendUvarint(b, r.Timestamp)
	b = appendBytes(b, r.Op)
	b = binary.AppendUvarint(b, uint64(len(r.MACs)))
	for _, mac := range r.MACs {
		b = appendBytes(b, mac)
	}
	return b
}

func appendBatch(b []byte, batch []protocol.Request) []byte {
	b = binary.AppendUvarint(b, uint64(len(batch)))
	for i := range batch {
		b = appendRequest(b, &batch[i])
	}
	return b
}

func appendMessages(b []byte, ms []protocol.Message) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		b = appendBody(b, &ms[i], true)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// Decoding errors match one of these with errors.Is.
var (
	// ErrLimit: the message claims more than a limit (MaxBatch, ...).
	ErrLimit = errors.New("wire: limit exceeded")
	// ErrMalformed: truncated, trailing bytes, a non-minimal uvarint, an
	// unknown version or flag, a value out of range.
	ErrMalformed = errors.New("wire: malformed message")
)

// Error is a decoding error. Field is where in the message, e.g.
// "new-view.view-changes[2].view-change.proof[0].batch".
type Error struct {
	Field  string
	Detail string
	Err    error // ErrLimit or ErrMalformed
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "wire: " + e.Detail
	}
	return "wire: " + e.Field + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func malformed(field, format string, args ...any) error {
	return &Error{Field: field, Detail: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func tooMany(field string, n uint64, what, limitName string, limit int) error {
	return &Error{Field: field, Detail: fmt.Sprintf("%d %s exceed %s (%d)", n, what, limitName, limit), Err: ErrLimit}
}

// within prefixes a nested error's field with where it is.
func within(prefix string, i int, err error) error {
	var e *Error
	if errors.As(err, &e) {
		p := prefix
		if i >= 0 {
			p = fmt.Sprintf("%s[%d]", prefix, i)
		}
		if e.Field == "" {
			e.Field = p
		} else {
			e.Field = p + "." + e.Field
		}
	}
	return err
}

// Decode decodes one message: all of b, which it does not retain (the
// message's byte slices share one copy of b). An error names the field;
// errors.Is(err, ErrLimit) or errors.Is(err, ErrMalformed). Empty slices
// decode as nil. The decoded structures take at most about 24 times
// len(b) bytes besides that copy.
func Decode(b []byte) (protocol.Message, error) {
	var m protocol.Message
	if len(b) > MaxMessageBytes {
		return m, &Error{Detail: fmt.Sprintf("%d bytes exceed MaxMessageBytes (%d)", len(b), MaxMessageBytes), Err: ErrLimit}
	}
	if len(b) == 0 {
		return m, malformed("", "empty")
	}
	if b[0] != Version {
		return m, malformed("version", "unsupported version %d (want %d)", b[0], Version)
	}
	d := decoder{b: append([]byte(nil), b[1:]...)}
	if err := d.message(&m, 0); err != nil {
		return protocol.Message{}, err
	}
	if len(d.b) != 0 {
		return protocol.Message{}, malformed("", "%d trailing bytes", len(d.b))
	}
	return m, nil
}

type decoder struct {
	b []byte // what is left
}

func (d *decoder) uvarint(field string) (uint64, error) {
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		return 0, malformed(field, "truncated")
	case n < 0:
		return 0, malformed(field, "uvarint overflows 64 bits")
	case n > 1 && d.b[n-1] == 0:
		return 0, malformed(field, "non-minimal uvarint")
	}
	d.b = d.b[n:]
	return v, nil
}

// count reads a count of elements at least minSize bytes each, at most
// limit.
func (d *decoder) count(field, what, limitName string, limit, minSize int) (int, error) {
	n, err := d.uvarint(field)
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return 0, tooMany(field, n, what, limitName, limit)
	}
	if n*uint64(minSize) > uint64(len(d.b)) {
		return 0, malformed(field, "%d %s cannot fit in the %d bytes left", n, what, len(d.b))
	}
	return int(n), nil
}

func (d *decoder) bytes(field, limitName string, limit int) ([]byte, error) {
	n, err := d.uvarint(field)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, tooMany(field, n, "bytes", limitName, limit)
	}
	if n > uint64(len(d.b)) {
		return nil, malformed(field, "%d bytes, %d left", n, len(d.b))
	}
	if n == 0 {
		return nil, nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) digest(field string, out *protocol.Digest) error {
	if len(d.b) < len(out) {
		return malformed(field, "truncated")
	}
	copy(out[:], d.b)
	d.b = d.b[len(out):]
	return nil
}

func (d *decoder) message(m *protocol.Message, depth int) error {
	if depth > MaxDepth {
		return &Error{Detail: fmt.Sprintf("nested deeper than MaxDepth (%d)", MaxDepth), Err: ErrLimit}
	}
	if len(d.b) < 2 {
		return malformed("kind", "truncated")
	}
	m.Kind = protocol.Kind(d.b[0])
	flags := d.b[1]
	d.b = d.b[2:]
	if flags&^flagsKnown != 0 {
		return malformed("flags", "unknown flags %#x", flags&^flagsKnown)
	}
	from, err := d.uvarint("from")
	if err != nil {
		return err
	}
	if from > math.MaxUint32 {
		return malformed("from", "%d overflows a replica id", from)
	}
	m.From = protocol.ReplicaID(from)
	v, err := d.uvarint("view")
	if err != nil {
		return err
	}
	m.View = protocol.View(v)
	s, err := d.uvarint("seq")
	if err != nil {
		return err
	}
	m.Seq = protocol.Seq(s)
	if flags&flagDigest != 0 {
		if err := d.digest("digest", &m.Digest); err != nil {
			return err
		}
		if m.Digest == (protocol.Digest{}) {
			return malformed("digest", "zero digest marked present")
		}
	}
	if m.Batch, err = d.batch("batch"); err != nil {
		return err
	}
	if flags&flagRequest != 0 {
		m.Request = new(protocol.Request)
		if err := d.request(m.Request); err != nil {
			return within("request", -1, err)
		}
	}
	if flags&flagReply != 0 {
		r := new(protocol.Reply)
		m.Reply = r
		if r.Client, err = d.uvarint("reply.client"); err != nil {
			return err
		}
		if r.Timestamp, err = d.uvarint("reply.timestamp"); err != nil {
			return err
		}
		if v, err = d.uvarint("reply.view"); err != nil {
			return err
		}
		r.View = protocol.View(v)
		if r.Result, err = d.bytes("reply.result", "MaxOp", MaxOp); err != nil {
			return err
		}
	}
	if flags&flagViewChange != 0 {
		m.ViewChange = new(protocol.ViewChange)
		if err := d.viewChange(m.ViewChange, depth); err != nil {
			return within("view-change", -1, err)
		}
	}
	if flags&flagNewView != 0 {
		nv := new(protocol.NewView)
		m.NewView = nv
		if nv.ViewChanges, err = d.messages("view-changes", depth); err != nil {
			return within("new-view", -1, err)
		}
		if nv.PrePrepares, err = d.messages("pre-prepares", depth); err != nil {
			return within("new-view", -1, err)
		}
	}
	if m.State, err = d.bytes("state", "MaxState", MaxState); err != nil {
		return err
	}
	n, err := d.count("auth.macs", "MACs", "MaxMACs", MaxMACs, minMAC)
	if err != nil {
		return err
	}
	if n > 0 {
		m.Auth.MACs = make([][]byte, n)
		for i := range m.Auth.MACs {
			if m.Auth.MACs[i], err = d.bytes("", "MaxMAC", MaxMAC); err != nil {
				return within("auth.macs", i, err)
			}
		}
	}
	if m.Auth.Sig, err = d.bytes("auth.sig", "MaxSig", MaxSig); err != nil {
		return err
	}
	return nil
}

func (d *decoder) request(r *protocol.Request) error {
	var err error
	if r.Client, err = d.uvarint("client"); err != nil {
		return err
	}
	if r.Timestamp, err = d.uvarint("timestamp"); err != nil {
		return err
	}
	if r.Op, err = d.bytes("op", "MaxOp", MaxOp); err != nil {
		return err
	}
	n, err := d.count("macs", "MACs", "MaxMACs", MaxMACs, minMAC)
	if err != nil || n == 0 {
		return err
	}
	r.MACs = make([][]byte, n)
	for i := range r.MACs {
		if r.MACs[i], err = d.bytes("", "MaxMAC", MaxMAC); err != nil {
			return within("macs", i, err)
		}
	}
	return nil
}

func (d *decoder) batch(field string) ([]protocol.Request, error) {
	n, err := d.count(field, "requests", "MaxBatch", MaxBatch, minRequest)
	if err != nil || n == 0 {
		return nil, err
	}
	batch := make([]protocol.Request, n)
	for i := range batch {
		if err := d.request(&batch[i]); err != nil {
			return nil, within(field, i, err)
		}
	}
	return batch, nil
}

func (d *decoder) messages(field string, depth int) ([]protocol.Message, error) {
	n, err := d.count(field, "messages", "MaxNested", MaxNested, minMessage)
	if err != nil || n == 0 {
		return nil, err
	}
	ms := make([]protocol.Message, n)
	for i := range ms {
		if err := d.message(&ms[i], depth+1); err != nil {
			return nil, within(field, i, err)
		}
	}
	return ms, nil
}

func (d *decoder) viewChange(vc *protocol.ViewChange, depth int) error {
	s, err := d.uvarint("stable")
	if err != nil {
		return err
	}
	vc.Stable = protocol.Seq(s)
	if err := d.digest("stable-digest", &vc.StableDigest); err != nil {
		return err
	}
	if vc.Proof, err = d.messages("proof", depth); err != nil {
		return err
	}
	n, err := d.count("prepared", "entries", "MaxPrepared", MaxPrepared, minPrepared)
	if err != nil || n == 0 {
		return err
	}
	vc.Prepared = make([]protocol.Prepared, n)
	for i := range vc.Prepared {
		if err := d.prepared(&vc.Prepared[i]); err != nil {
			return within("prepared", i, err)
		}
	}
	return nil
}

func (d *decoder) prepared(p *protocol.Prepared) error {
	s, err := d.uvarint("seq")
	if err != nil {
		return err
	}
	p.Seq = protocol.Seq(s)
	v, err := d.uvarint("pview")
	if err != nil {
		return err
	}
	p.PView = protocol.View(v)
	if err := d.digest("pdigest", &p.PDigest); err != nil {
		return err
	}
	n, err := d.count("q", "digests", "MaxDigests", MaxDigests, minPrePrepared)
	if err != nil {
		return err
	}
	if n > 0 {
		p.Q = make([]protocol.PrePrepared, n)
		for i := range p.Q {
			v, err := d.uvarint("view")
			if err != nil {
				return within("q", i, err)
			}
			p.Q[i].View = protocol.View(v)
			if err := d.digest("digest", &p.Q[i].Digest); err != nil {
				return within("q", i, err)
			}
		}
	}
	if n, err = d.count("batches", "batches", "MaxDigests", MaxDigests, minBatchOf); err != nil || n == 0 {
		return err
	}
	p.Batches = make([]protocol.BatchOf, n)
	for i := range p.Batches {
		if err := d.digest("digest", &p.Batches[i].Digest); err != nil {
			return within("batches", i, err)
		}
		if p.Batches[i].Batch, err = d.batch("batch"); err != nil {
			return within("batches", i, err)
		}
	}
	return nil
}
