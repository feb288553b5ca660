package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
)

const n = 4

var modes = []Mode{MACs, Signatures}

var kinds = []protocol.Kind{protocol.KindRequest, protocol.KindPrePrepare, protocol.KindPrepare, protocol.KindCommit,
	protocol.KindCheckpoint, protocol.KindViewChange, protocol.KindNewView, protocol.KindReply, protocol.KindFetch,
	protocol.KindState}

func batch() []protocol.Request {
	return []protocol.Request{{Client: 100, Timestamp: 1, Op: []byte("put a 1")}, {Client: 101, Timestamp: 9, Op: []byte("get a")}}
}

func checkpoint(k *Keys, mode Mode, from protocol.ReplicaID) protocol.Message {
	m := protocol.Message{Kind: protocol.KindCheckpoint, From: from, Seq: 128, Digest: protocol.Digest{7, 7}}
	k.Authenticate(mode, &m)
	return m
}

func viewChange(k *Keys, mode Mode, from protocol.ReplicaID) protocol.Message {
	b := batch()
	d := protocol.BatchDigest(b)
	m := protocol.Message{Kind: protocol.KindViewChange, From: from, View: 6, ViewChange: &protocol.ViewChange{
		Stable: 128, StableDigest: protocol.Digest{7, 7},
		Proof: []protocol.Message{checkpoint(k, mode, 0), checkpoint(k, mode, 1), checkpoint(k, mode, 3)},
		Prepared: []protocol.Prepared{{Seq: 129, PView: 5, PDigest: d, Q: []protocol.PrePrepared{{View: 5, Digest: d}},
			Batches: []protocol.BatchOf{{Digest: d, Batch: b}}}}}}
	k.Authenticate(mode, &m)
	return m
}

// sample is an authenticated message of kind kind, from replica 2 (or
// client 100), nested messages authenticated by their own senders.
func sample(k *Keys, mode Mode, kind protocol.Kind) protocol.Message {
	b := batch()
	d := protocol.BatchDigest(b)
	m := protocol.Message{Kind: kind, From: 2, View: 5, Seq: 129}
	switch kind {
	case protocol.KindRequest:
		m.From = 0
		m.Request = &protocol.Request{Client: 100, Timestamp: 1, Op: []byte("put a 1")}
	case protocol.KindPrePrepare:
		m.From, m.Batch, m.Digest = 1, b, d
	case protocol.KindPrepare, protocol.KindCommit:
		m.Digest = d
	case protocol.KindCheckpoint:
		return checkpoint(k, mode, 2)
	case protocol.KindViewChange:
		return viewChange(k, mode, 2)
	case protocol.KindNewView:
		m.View = 6
		m.NewView = &protocol.NewView{
			ViewChanges: []protocol.Message{viewChange(k, mode, 0), viewChange(k, mode, 1), viewChange(k, mode, 2)},
			PrePrepares: []protocol.Message{{Kind: protocol.KindPrePrepare, From: 2, View: 6, Seq: 129, Digest: d, Batch: b}},
		}
	case protocol.KindReply:
		m.Reply = &protocol.Reply{Client: 100, Timestamp: 1, View: 5, Result: []byte("ok")}
	case protocol.KindFetch:
		m.Seq = 128
	case protocol.KindState:
		m.Seq, m.Digest, m.State = 128, protocol.Digest{7, 7}, []byte("the snapshot")
	}
	k.Authenticate(mode, &m)
	return m
}

// viaWire is m as a receiver sees it.
func viaWire(t testing.TB, m *protocol.Message) protocol.Message {
	got, err := wire.Decode(wire.Append(nil, m))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestEveryKindVerifiesAtEveryReceiver(t *testing.T) {
	k := NewKeys(42, n)
	for _, mode := range modes {
		for _, kind := range kinds {
			m := sample(k, mode, kind)
			signed := mode.signed(kind)
			if signed != (len(m.Auth.Sig) > 0) || signed == (len(m.Auth.MACs) > 0) {
				t.Errorf("%v %v: %d MACs, %d-byte signature", mode, kind, len(m.Auth.MACs), len(m.Auth.Sig))
			}
			if kind == protocol.KindReply && mode == MACs && len(m.Auth.MACs) != 1 {
				t.Errorf("reply: %d MACs, want 1", len(m.Auth.MACs))
			}
			received := viaWire(t, &m)
			for r := range protocol.ReplicaID(n) {
				if err := k.Verify(mode, &received, r); err != nil {
					t.Errorf("%v %v at %d: %v", mode, kind, r, err)
				}
			}
			// Another process's keys from the same seed verify it too.
			if err := NewKeys(42, n).Verify(mode, &received, 3); err != nil {
				t.Errorf("%v %v with keys derived again: %v", mode, kind, err)
			}
		}
	}
}

// TestFlippedBitFails: a bit flipped anywhere in the signable bytes makes
// the message undecodable or unverifiable (the encoding is canonical).
func TestFlippedBitFails(t *testing.T) {
	k := NewKeys(42, n)
	for _, mode := range modes {
		for _, kind := range kinds {
			m := sample(k, mode, kind)
			enc := wire.Append(nil, &m)
			signable := len(wire.Signable(nil, &m))
			for i := range signable {
				bits := []int{i % 8}
				if signable <= 256 {
					bits = []int{0, 1, 2, 3, 4, 5, 6, 7}
				}
				for _, bit := range bits {
					b := bytes.Clone(enc)
					b[i] ^= 1 << bit
					got, err := wire.Decode(b)
					if err != nil {
						continue // rejected by the decoder
					}
					r := protocol.ReplicaID(i % n)
					if err := k.Verify(mode, &got, r); err == nil {
						t.Fatalf("%v %v: bit %d of byte %d flipped verifies at %d", mode, kind, bit, i, r)
					} else if !errors.Is(err, ErrBadMAC) && !errors.Is(err, ErrBadSignature) {
						t.Fatalf("%v %v: %v", mode, kind, err)
					}
				}
			}
		}
	}
}

func TestMACIsPerReceiver(t *testing.T) {
	k := NewKeys(42, n)
	for _, kind := range []protocol.Kind{protocol.KindPrepare, protocol.KindRequest} {
		m := sample(k, MACs, kind)
		m.Auth.MACs[3] = m.Auth.MACs[2]
		if err := k.Verify(MACs, &m, 2); err != nil {
			t.Fatalf("%v at 2: %v", kind, err)
		}
		if err := k.Verify(MACs, &m, 3); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("%v: 2's MAC at 3: %v", kind, err)
		}
		m.Auth.MACs = m.Auth.MACs[:2]
		if err := k.Verify(MACs, &m, 3); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("%v: no MAC for 3: %v", kind, err)
		}
	}
	// The pair key is the pair's: 2 cannot pass its prepare off as 1's.
	m := sample(k, MACs, protocol.KindPrepare)
	m.From = 1
	if err := k.Verify(MACs, &m, 3); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("sender rewritten: %v", err)
	}
	// A reply's MAC is its client's.
	r := sample(k, MACs, protocol.KindReply)
	r.Reply.Client = 101
	if err := k.Verify(MACs, &r, 0); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("reply to another client: %v", err)
	}
}

// TestModesDoNotMix: a message authenticated in one mode is rejected in
// the other when its kind's authentication differs.
func TestModesDoNotMix(t *testing.T) {
	k := NewKeys(42, n)
	for _, kind := range kinds {
		m := sample(k, MACs, kind)
		if MACs.signed(kind) == Signatures.signed(kind) {
			if err := k.Verify(Signatures, &m, 1); err != nil {
				t.Errorf("%v: %v", kind, err)
			}
			continue
		}
		if err := k.Verify(Signatures, &m, 1); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%v with MACs verified as signed: %v", kind, err)
		}
		s := sample(k, Signatures, kind)
		if err := k.Verify(MACs, &s, 1); !errors.Is(err, ErrBadMAC) {
			t.Errorf("%v signed verified with MACs: %v", kind, err)
		}
	}
}

func TestNestedSignatures(t *testing.T) {
	k := NewKeys(42, n)
	garble := func(m *protocol.Message) { m.Auth.Sig = bytes.Clone(m.Auth.Sig); m.Auth.Sig[10] ^= 1 }
	for _, mode := range modes {
		for _, c := range []struct {
			name string
			kind protocol.Kind
			bad  func(m *protocol.Message)
			want string
		}{
			{"view change with a bad checkpoint", protocol.KindViewChange,
				func(m *protocol.Message) { garble(&m.ViewChange.Proof[1]) }, "proof[1]"},
			{"view change with a checkpoint claimed by another", protocol.KindViewChange,
				func(m *protocol.Message) { m.ViewChange.Proof[1].From = 2 }, "proof[1]"},
			{"view change with an unsigned checkpoint", protocol.KindViewChange,
				func(m *protocol.Message) { m.ViewChange.Proof[0].Auth = protocol.Auth{} }, "proof[0]"},
			{"new view with a bad view change", protocol.KindNewView,
				func(m *protocol.Message) { garble(&m.NewView.ViewChanges[2]) }, "view-changes[2]"},
			{"new view with a view change with a bad checkpoint", protocol.KindNewView,
				func(m *protocol.Message) {
					vc := &m.NewView.ViewChanges[1]
					vc.ViewChange.Proof = append([]protocol.Message(nil), vc.ViewChange.Proof...)
					garble(&vc.ViewChange.Proof[2])
					k.Authenticate(mode, vc) // its own signature is good
				}, "view-changes[1]: view-change from 1: proof[2]"},
		} {
			m := sample(k, mode, c.kind)
			c.bad(&m)
			k.Authenticate(mode, &m) // the outer signature is good
			err := k.Verify(mode, &m, 0)
			if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: %s: %v", mode, c.name, err)
			}
		}
		// A new view's pre-prepares need no authentication of their own.
		m := sample(k, mode, protocol.KindNewView)
		if len(m.NewView.PrePrepares[0].Auth.MACs)+len(m.NewView.PrePrepares[0].Auth.Sig) != 0 {
			t.Fatal("sample pre-prepare is authenticated")
		}
		if err := k.Verify(mode, &m, 0); err != nil {
			t.Fatalf("%v: new view: %v", mode, err)
		}
	}
}

func TestForge(t *testing.T) {
	k := NewKeys(42, n)
	for _, mode := range modes {
		for _, kind := range kinds {
			m := sample(k, mode, kind)
			orig := viaWire(t, &m)
			forged := m
			Forge(&forged)
			if !reflect.DeepEqual(m, orig) {
				t.Fatalf("%v %v: Forge changed the original's Auth", mode, kind)
			}
			received := viaWire(t, &forged)
			want := ErrBadMAC
			if mode.signed(kind) {
				want = ErrBadSignature
			}
			for r := range protocol.ReplicaID(n) {
				if err := k.Verify(mode, &received, r); !errors.Is(err, want) {
					t.Errorf("%v %v forged at %d: %v", mode, kind, r, err)
				}
			}
		}
	}
}

func TestUnknownSender(t *testing.T) {
	k := NewKeys(42, n)
	for _, mode := range modes {
		for _, kind := range []protocol.Kind{protocol.KindPrepare, protocol.KindCheckpoint} {
			m := protocol.Message{Kind: kind, From: n}
			k.Authenticate(mode, &m)
			if len(m.Auth.MACs)+len(m.Auth.Sig) != 0 {
				t.Fatalf("%v %v from %d authenticated", mode, kind, n)
			}
			good := sample(k, mode, kind)
			good.From = 1 << 31
			if err := k.Verify(mode, &good, 0); !errors.Is(err, ErrBadMAC) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%v %v from %d: %v", mode, kind, good.From, err)
			}
		}
	}
	m := sample(k, MACs, protocol.KindPrepare)
	if err := k.Verify(MACs, &m, n); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("receiver out of range: %v", err)
	}
}

func TestKeysDeterministic(t *testing.T) {
	a, b, other := NewKeys(42, n), NewKeys(42, n), NewKeys(43, n)
	for r := range protocol.ReplicaID(n) {
		if !a.Public(r).Equal(b.Public(r)) || a.Public(r).Equal(other.Public(r)) {
			t.Fatalf("public key of %d", r)
		}
		if a.ClientKey(100, r) != b.ClientKey(100, r) || a.ClientKey(100, r) == other.ClientKey(100, r) ||
			a.ClientKey(100, r) == a.ClientKey(101, r) {
			t.Fatalf("client key of %d", r)
		}
		for s := range protocol.ReplicaID(n) {
			if a.PairKey(r, s) != b.PairKey(r, s) || a.PairKey(r, s) != a.PairKey(s, r) ||
				a.PairKey(r, s) == other.PairKey(r, s) {
				t.Fatalf("pair key of %d and %d", r, s)
			}
		}
	}
	distinct := map[[32]byte]bool{}
	for r := range protocol.ReplicaID(n) {
		for s := r; s < n; s++ {
			distinct[a.PairKey(r, s)] = true
		}
	}
	if len(distinct) != n*(n+1)/2 {
		t.Fatalf("%d distinct pair keys, want %d", len(distinct), n*(n+1)/2)
	}
	if a.Public(n) != nil {
		t.Fatal("public key beyond n")
	}
	// Same seed, same bytes; another seed's keys reject.
	for _, mode := range modes {
		for _, kind := range kinds {
			ma, mb := sample(a, mode, kind), sample(b, mode, kind)
			if !bytes.Equal(wire.Append(nil, &ma), wire.Append(nil, &mb)) {
				t.Fatalf("%v %v: authenticated differently from the same seed", mode, kind)
			}
			if err := other.Verify(mode, &ma, 1); err == nil {
				t.Fatalf("%v %v: verified with another seed's keys", mode, kind)
			}
		}
	}
}

func TestHMACIsStandard(t *testing.T) {
	key := [32]byte{1, 2, 3}
	d := sha256.Sum256([]byte("message"))
	h := hmac.New(sha256.New, key[:])
	h.Write(d[:])
	want := h.Sum(nil)[:MACSize]
	got := hmac16(&key, &d)
	if !bytes.Equal(got[:], want) {
		t.Fatalf("hmac16 = %x, want %x", got, want)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range modes {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Fatalf("%v: %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("rsa"); err == nil {
		t.Fatal("unknown mode parsed")
	}
}

// BenchmarkPrepare: one prepare authenticated by its sender and verified
// by one receiver, n = 4.
func BenchmarkPrepare(b *testing.B) {
	k := NewKeys(42, n)
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			m := protocol.Message{Kind: protocol.KindPrepare, From: 2, View: 5, Seq: 129, Digest: protocol.BatchDigest(batch())}
			for b.Loop() {
				k.Authenticate(mode, &m)
				if err := k.Verify(mode, &m, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyNewView: a new view from 3 view changes of 3 checkpoints
// each (n = 4): 1 + 3 + 3 distinct signatures to check.
func BenchmarkVerifyNewView(b *testing.B) {
	k := NewKeys(42, n)
	m := sample(k, MACs, protocol.KindNewView)
	b.ReportAllocs()
	for b.Loop() {
		if err := k.Verify(MACs, &m, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleKeys_Verify() {
	k := NewKeys(42, 4)
	m := protocol.Message{Kind: protocol.KindPrepare, From: 2, View: 5, Seq: 129}
	k.Authenticate(MACs, &m)
	fmt.Println(len(m.Auth.MACs), k.Verify(MACs, &m, 1))
	Forge(&m)
	fmt.Println(errors.Is(k.Verify(MACs, &m, 1), ErrBadMAC))
	// Output:
	// 4 <nil>
	// true
}

// A request ordered in a pre-prepare carries its client's authenticator:
// every replica's entry checks; a changed op, a made-up request or a
// missing authenticator does not, also inside a new view.
func TestRequestAuthenticators(t *testing.T) {
	k := NewKeys(9, 4)
	req := protocol.Request{Client: 77, Timestamp: 5, Op: []byte("put k v")}
	k.AuthenticateRequest(&req)
	pp := protocol.Message{Kind: protocol.KindPrePrepare, From: 0, Seq: 3, Batch: []protocol.Request{req}}
	for r := range 4 {
		if err := k.VerifyRequests(&pp, protocol.ReplicaID(r)); err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
	}
	changed := req
	changed.Op = []byte("put k w")
	madeUp := protocol.Request{Client: 78, Timestamp: 1, Op: []byte("get k")}
	for name, bad := range map[string]protocol.Request{"changed op": changed, "no authenticator": madeUp} {
		m := protocol.Message{Kind: protocol.KindPrePrepare, Batch: []protocol.Request{req, bad}}
		if err := k.VerifyRequests(&m, 2); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v", name, err)
		}
		nv := protocol.Message{Kind: protocol.KindNewView, NewView: &protocol.NewView{PrePrepares: []protocol.Message{m}}}
		if err := k.VerifyRequests(&nv, 1); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s in a new view: %v", name, err)
		}
	}
}
