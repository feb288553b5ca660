package raft

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
)

// Commands are encoded compactly in binary: one op byte, then key, value and
// expect, each as a uvarint length followed by the bytes. Binary rather than
// JSON because a get is also a log entry (see below), so every operation the
// load makes is encoded once and written to disk on every node.
//
// Linearizable reads: a get is applied through the Raft log like a write.
// Its result is the FSM state at the get's position in the log, and the
// Apply future returns only after that position is committed by a quorum and
// applied on the leader. Any write that completed before the get was called
// is at a lower log index (it was committed before), and any write that
// starts after the get returned gets a higher one, so the read observes
// exactly the writes ordered before it: it is linearizable for the same
// reason writes are, with no reliance on leases or clocks. A stale leader
// cannot answer, because it cannot commit the get. The cost is one log entry
// per read, which is fine at soakd's 500 ops/s.
const (
	opPut byte = 1
	opGet byte = 2
	opCAS byte = 3
)

// MaxValueBytes bounds a value (and a cas expect); larger ops fail before
// they reach the log, so one bad op cannot bloat every node's log.
const MaxValueBytes = 64 << 10

// MaxKeyBytes bounds a key.
const MaxKeyBytes = 1 << 10

// DefaultMaxKeys bounds the store when load.raft.keys is not set.
const DefaultMaxKeys = 1 << 16

var (
	// ErrKeySpaceFull is returned (outcome failed) for a write that would add
	// a key beyond the configured key space; the FSM is bounded by it.
	ErrKeySpaceFull = errors.New("raft: key space full")
	errBadCommand   = errors.New("raft: malformed command")
	snapshotMagic   = []byte("SKV1")
)

type command struct {
	op     byte
	key    string
	value  []byte
	expect []byte
}

func encodeCommand(c command) []byte {
	buf := make([]byte, 0, 1+3*binary.MaxVarintLen32+len(c.key)+len(c.value)+len(c.expect))
	buf = append(buf, c.op)
	buf = binary.AppendUvarint(buf, uint64(len(c.key)))
	buf = append(buf, c.key...)
	buf = binary.AppendUvarint(buf, uint64(len(c.value)))
	buf = append(buf, c.value...)
	buf = binary.AppendUvarint(buf, uint64(len(c.expect)))
	buf = append(buf, c.expect...)
	return buf
}

func decodeCommand(b []byte) (command, error) {
	if len(b) < 1 {
		return command{}, errBadCommand
	}
	c := command{op: b[0]}
	b = b[1:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errBadCommand
		}
		f := b[k : k+int(n)]
		b = b[k+int(n):]
		return f, nil
	}
	key, err := field()
	if err != nil {
		return command{}, err
	}
	c.key = string(key)
	if c.value, err = field(); err != nil {
		return command{}, err
	}
	if c.expect, err = field(); err != nil {
		return command{}, err
	}
	if len(b) != 0 {
		return command{}, errBadCommand
	}
	return c, nil
}

// reply is what the FSM returns for one command (the Apply future's
// Response).
type reply struct {
	// value: get: the value read; cas: the value before the op.
	value []byte
	// found: whether the key existed before the op.
	found   bool
	swapped bool
	err     error
}

// fsm is the replicated KV store. A cas swaps only a key that exists and
// holds exactly its expect: a missing key never matches, even an empty
// expect (the register model of internal/check says the same).
type fsm struct {
	maxKeys int
	// snapshots counts snapshots this node persisted (shared across the
	// node's incarnations, owned by the Cluster).
	snapshots *atomic.Uint64
	// loseWritesEvery is the Cluster's planted-bug knob (tests only).
	loseWritesEvery *atomic.Uint64

	mu      sync.RWMutex
	kv      map[string][]byte
	applied uint64 // index of the last command applied
}

func newFSM(maxKeys int, snapshots, loseWritesEvery *atomic.Uint64) *fsm {
	return &fsm{maxKeys: maxKeys, snapshots: snapshots, loseWritesEvery: loseWritesEvery, kv: make(map[string][]byte)}
}

// Apply implements hraft.FSM.
func (f *fsm) Apply(l *hraft.Log) interface{} {
	c, err := decodeCommand(l.Data)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = l.Index
	if err != nil {
		return &reply{err: err}
	}
	cur, found := f.kv[c.key]
	switch c.op {
	case opGet:
		return &reply{value: cur, found: found}
	case opPut:
		if !found && len(f.kv) >= f.maxKeys {
			return &reply{err: ErrKeySpaceFull}
		}
		if n := f.loseWritesEvery.Load(); n > 0 && l.Index%n == 0 {
			return &reply{found: found} // the planted bug: acknowledged, not applied
		}
		f.kv[c.key] = bytes.Clone(c.value) // do not pin the whole log entry
		return &reply{found: found}
	case opCAS:
		if !found || !bytes.Equal(cur, c.expect) {
			return &reply{value: cur, found: found}
		}
		f.kv[c.key] = bytes.Clone(c.value)
		return &reply{value: cur, found: found, swapped: true}
	default:
		return &reply{err: fmt.Errorf("%w: op %d", errBadCommand, c.op)}
	}
}

// get reads a key directly (tests and catch-up checks only: not
// linearizable on its own).
func (f *fsm) get(key string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.kv[key]
	return v, ok
}

// state copies the whole map (tests only).
func (f *fsm) state() map[string][]byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := make(map[string][]byte, len(f.kv))
	for k, v := range f.kv {
		m[k] = v
	}
	return m
}

func (f *fsm) appliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Snapshot implements hraft.FSM. Values are never mutated in place, so a
// shallow copy of the map is a consistent point-in-time image.
func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := make(map[string][]byte, len(f.kv))
	for k, v := range f.kv {
		m[k] = v
	}
	return &fsmSnapshot{kv: m, applied: f.applied, counter: f.snapshots}, nil
}

// Restore implements hraft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	kv, applied, err := readSnapshot(bufio.NewReader(rc))
	if err != nil {
		return fmt.Errorf("raft: restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.kv, f.applied = kv, applied
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct {
	kv      map[string][]byte
	applied uint64
	counter *atomic.Uint64
}

// Persist implements hraft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	err := writeSnapshot(w, s.kv, s.applied)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raft: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raft: close snapshot: %w", err)
	}
	if s.counter != nil {
		s.counter.Add(1)
	}
	return nil
}

// Release implements hraft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

func writeSnapshot(w io.Writer, kv map[string][]byte, applied uint64) error {
	var buf []byte
	buf = append(buf, snapshotMagic...)
	buf = binary.AppendUvarint(buf, applied)
	buf = binary.AppendUvarint(buf, uint64(len(kv)))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	for k, v := range kv {
		buf = buf[:0]
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func readSnapshot(r *bufio.Reader) (map[string][]byte, uint64, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return nil, 0, errors.New("bad snapshot header")
	}
	applied, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, 0, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, 0, err
	}
	if n > 1<<24 {
		return nil, 0, fmt.Errorf("snapshot claims %d keys", n)
	}
	kv := make(map[string][]byte, n)
	field := func(limit int) ([]byte, error) {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if l > uint64(limit) {
			return nil, fmt.Errorf("snapshot field of %d bytes", l)
		}
		b := make([]byte, l)
		_, err = io.ReadFull(r, b)
		return b, err
	}
	for i := uint64(0); i < n; i++ {
		k, err := field(MaxKeyBytes)
		if err != nil {
			return nil, 0, err
		}
		v, err := field(MaxValueBytes)
		if err != nil {
			return nil, 0, err
		}
		kv[string(k)] = v
	}
	return kv, applied, nil
}
