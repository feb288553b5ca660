package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Ops.
const (
	OpPut byte = 1
	OpGet byte = 2
	OpCAS byte = 3
)

// Bounds: an op over them is refused (Result.Err) before it can bloat every
// replica's state.
const (
	MaxKeyBytes   = 1 << 10
	MaxValueBytes = 64 << 10
)

// Op is one operation.
type Op struct {
	Kind   byte
	Key    string
	Value  []byte // put, cas: the value written
	Expect []byte // cas: the compare value
}

// Result is what an op did.
type Result struct {
	Found   bool   // the key existed (get: when read; put, cas: before the op)
	Swapped bool   // cas: it matched and wrote
	Value   []byte // get: the value; cas: the value before
	Err     string // refused (malformed, too large, key space full): nothing changed
}

// ErrMalformed: bytes that do not decode.
var ErrMalformed = errors.New("kv: malformed")

// EncodeOp is an op's wire form.
func EncodeOp(o Op) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen32+len(o.Key)+len(o.Value)+len(o.Expect))
	b = append(b, o.Kind)
	b = appendBytes(b, []byte(o.Key))
	b = appendBytes(b, o.Value)
	return appendBytes(b, o.Expect)
}

// DecodeOp parses EncodeOp's output.
func DecodeOp(b []byte) (Op, error) {
	if len(b) < 1 {
		return Op{}, ErrMalformed
	}
	o := Op{Kind: b[0]}
	rest := b[1:]
	var key []byte
	var err error
	if key, rest, err = readBytes(rest); err != nil {
		return Op{}, err
	}
	if o.Value, rest, err = readBytes(rest); err != nil {
		return Op{}, err
	}
	if o.Expect, rest, err = readBytes(rest); err != nil {
		return Op{}, err
	}
	if len(rest) != 0 {
		return Op{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	o.Key = string(key)
	return o, nil
}

// EncodeResult is a result's wire form (what replies carry).
func EncodeResult(r Result) []byte {
	flags := byte(0)
	if r.Found {
		flags |= 1
	}
	if r.Swapped {
		flags |= 2
	}
	b := []byte{flags}
	b = appendBytes(b, r.Value)
	return appendBytes(b, []byte(r.Err))
}

// DecodeResult parses EncodeResult's output.
func DecodeResult(b []byte) (Result, error) {
	if len(b) < 1 {
		return Result{}, ErrMalformed
	}
	r := Result{Found: b[0]&1 != 0, Swapped: b[0]&2 != 0}
	rest := b[1:]
	var msg []byte
	var err error
	if r.Value, rest, err = readBytes(rest); err != nil {
		return Result{}, err
	}
	if msg, rest, err = readBytes(rest); err != nil {
		return Result{}, err
	}
	if len(rest) != 0 {
		return Result{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	r.Err = string(msg)
	return r, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func readBytes(b []byte) (v, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, ErrMalformed
	}
	if n == 0 {
		return nil, b[k:], nil
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// Store is the replicated map, bounded to MaxKeys keys.
type Store struct {
	MaxKeys int
	m       map[string][]byte
}

// New returns an empty store of at most maxKeys keys.
func New(maxKeys int) *Store { return &Store{MaxKeys: maxKeys, m: map[string][]byte{}} }

// Execute implements protocol.Application.
func (s *Store) Execute(op []byte) []byte { return EncodeResult(s.apply(op)) }

func (s *Store) apply(b []byte) Result {
	o, err := DecodeOp(b)
	switch {
	case err != nil:
		return Result{Err: err.Error()}
	case len(o.Key) > MaxKeyBytes || len(o.Value) > MaxValueBytes || len(o.Expect) > MaxValueBytes:
		return Result{Err: "kv: key or value too large"}
	}
	cur, found := s.m[o.Key]
	switch o.Kind {
	case OpGet:
		return Result{Found: found, Value: cur}
	case OpPut:
		if !found && len(s.m) >= s.MaxKeys {
			return Result{Err: "kv: key space full"}
		}
		s.m[o.Key] = bytes.Clone(o.Value)
		return Result{Found: found}
	case OpCAS:
		if !found || !bytes.Equal(cur, o.Expect) {
			return Result{Found: found, Value: cur}
		}
		s.m[o.Key] = bytes.Clone(o.Value)
		return Result{Found: true, Swapped: true, Value: cur}
	}
	return Result{Err: fmt.Sprintf("kv: unknown op %d", o.Kind)}
}

// Snapshot implements protocol.Application: the keys in order, each with
// its value.
func (s *Store) Snapshot() []byte {
	keys := make([]string, 0, len(s.m))
	size := 0
	for k, v := range s.m {
		keys = append(keys, k)
		size += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	slices.Sort(keys)
	b := binary.AppendUvarint(make([]byte, 0, size+binary.MaxVarintLen32), uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, []byte(k))
		b = appendBytes(b, s.m[k])
	}
	return b
}

// Restore implements protocol.Application.
func (s *Store) Restore(snap []byte) error {
	n, k := binary.Uvarint(snap)
	if k <= 0 || n > uint64(len(snap)) {
		return fmt.Errorf("%w snapshot", ErrMalformed)
	}
	m := make(map[string][]byte, n)
	rest := snap[k:]
	for range n {
		var key, val []byte
		var err error
		if key, rest, err = readBytes(rest); err != nil {
			return fmt.Errorf("kv: snapshot key: %w", err)
		}
		if val, rest, err = readBytes(rest); err != nil {
			return fmt.Errorf("kv: snapshot value: %w", err)
		}
		m[string(key)] = bytes.Clone(val)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w snapshot: %d trailing bytes", ErrMalformed, len(rest))
	}
	s.m = m
	return nil
}

// Len is the number of keys.
func (s *Store) Len() int { return len(s.m) }
