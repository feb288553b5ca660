package kv

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func exec(t *testing.T, s *Store, o Op) Result {
	t.Helper()
	r, err := DecodeResult(s.Execute(EncodeOp(o)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The Raft store's semantics: a cas never matches an absent key, nil and
// empty are one value, a cas that does not match is no error.
func TestSemantics(t *testing.T) {
	s := New(10)
	if r := exec(t, s, Op{Kind: OpCAS, Key: "k", Expect: nil, Value: []byte("x")}); r.Swapped || r.Found {
		t.Fatalf("cas on an absent key: %+v", r)
	}
	if r := exec(t, s, Op{Kind: OpPut, Key: "k"}); r.Found || r.Err != "" {
		t.Fatalf("first put: %+v", r)
	}
	if r := exec(t, s, Op{Kind: OpCAS, Key: "k", Expect: []byte{}, Value: []byte("v")}); !r.Swapped {
		t.Fatalf("cas of empty on an empty value: %+v", r)
	}
	if r := exec(t, s, Op{Kind: OpCAS, Key: "k", Expect: []byte("w"), Value: []byte("z")}); r.Swapped || !bytes.Equal(r.Value, []byte("v")) {
		t.Fatalf("cas with a wrong expect: %+v", r)
	}
	if r := exec(t, s, Op{Kind: OpGet, Key: "k"}); !r.Found || string(r.Value) != "v" {
		t.Fatalf("get: %+v", r)
	}
	if r := exec(t, s, Op{Kind: OpGet, Key: "absent"}); r.Found || r.Value != nil {
		t.Fatalf("get absent: %+v", r)
	}
}

func TestRefusals(t *testing.T) {
	s := New(1)
	exec(t, s, Op{Kind: OpPut, Key: "a"})
	for _, tc := range []struct {
		name string
		op   []byte
	}{
		{"key space full", EncodeOp(Op{Kind: OpPut, Key: "b"})},
		{"too large", EncodeOp(Op{Kind: OpPut, Key: "a", Value: make([]byte, MaxValueBytes+1)})},
		{"unknown op", EncodeOp(Op{Kind: 9, Key: "a"})},
		{"malformed", []byte{OpPut, 200}},
	} {
		r, err := DecodeResult(s.Execute(tc.op))
		if err != nil || r.Err == "" {
			t.Errorf("%s: %+v %v, want a refusal", tc.name, r, err)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("refused ops changed the store: %d keys", s.Len())
	}
}

// Two stores fed the same ops in the same order have the same snapshot
// whatever order their maps iterate in, and a restored store continues
// identically.
func TestSnapshotIsDeterministicAndRestores(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := New(64), New(64)
	for range 2000 {
		o := Op{Kind: byte(1 + rng.IntN(3)), Key: string(rune('a' + rng.IntN(40))), Value: []byte{byte(rng.IntN(4))},
			Expect: []byte{byte(rng.IntN(4))}}
		ra, rb := a.Execute(EncodeOp(o)), b.Execute(EncodeOp(o))
		if !bytes.Equal(ra, rb) {
			t.Fatal("same op, different results")
		}
	}
	if !bytes.Equal(a.Snapshot(), b.Snapshot()) {
		t.Fatal("snapshots differ")
	}
	c := New(64)
	if err := c.Restore(a.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Snapshot(), a.Snapshot()) {
		t.Fatal("restored snapshot differs")
	}
	if err := c.Restore([]byte{5, 1}); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
}

func FuzzDecodeOp(f *testing.F) {
	f.Add(EncodeOp(Op{Kind: OpCAS, Key: "k", Value: []byte("v"), Expect: []byte("e")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOp(b)
		if err != nil {
			return
		}
		// Varints have more than one form: compare ops, not bytes.
		back, err := DecodeOp(EncodeOp(o))
		if err != nil || back.Kind != o.Kind || back.Key != o.Key || !bytes.Equal(back.Value, o.Value) || !bytes.Equal(back.Expect, o.Expect) {
			t.Fatalf("%x: %+v re-encodes to %+v (%v)", b, o, back, err)
		}
	})
}
