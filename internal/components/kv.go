package components

import "time"

// EventInvariantViolation is the journal event type of a broken invariant,
// from a checker or from a component that checks its own (a migration's
// byte-exact copy).
const EventInvariantViolation = "invariant_violation"

// KVOp is one finished operation on a key-value component: the history a
// linearizability checker consumes. Components record it; checkers read
// it; it is defined once, here.
//
// A recorder keeps the byte slices; the component must not modify them
// afterwards. A cas matches only a present key whose value equals Expect
// byte for byte (nil and empty are the same value); it never matches an
// absent key.
type KVOp struct {
	ClientID     int
	Call, Return time.Time
	Op           string // put | get | cas
	Key          string
	Value        []byte // put, cas: the value written
	Expect       []byte // cas: the compare value
	// Output: get: the value read; cas: the value before the op (equal to
	// Expect when Swapped). Only meaningful when Outcome is ok.
	Output []byte
	// Found: the key existed (get: when read; cas: before the op).
	Found   bool
	Swapped bool
	Outcome Outcome
}

// KVRecorder receives every operation a key-value component finishes.
// Record is called on the operation's goroutine, so it must be fast and
// safe for concurrent use.
type KVRecorder interface {
	Record(op KVOp)
}

// KVHistory is implemented by a component whose operations form a
// key-value history: the run hands it a recorder (a linearizability
// checker) before load starts. nil removes it.
type KVHistory interface {
	SetRecorder(r KVRecorder)
}
