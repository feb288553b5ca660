package byzantine

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

const testN = 4

func mustNew(t testing.TB, name string, params map[string]string, self protocol.ReplicaID, seed uint64) Behavior {
	t.Helper()
	b, err := New(name, params, self, testN, seed)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != name {
		t.Fatalf("Name() = %q, want %q", b.Name(), name)
	}
	return b
}

func batch(reqs ...string) []protocol.Request {
	var b []protocol.Request
	for i, op := range reqs {
		b = append(b, protocol.Request{Client: uint64(i + 1), Timestamp: 7, Op: []byte(op)})
	}
	return b
}

func prePrepare(from protocol.ReplicaID, v protocol.View, s protocol.Seq, b []protocol.Request) protocol.Message {
	return protocol.Message{Kind: protocol.KindPrePrepare, From: from, View: v, Seq: s, Digest: protocol.BatchDigest(b), Batch: b}
}

func vote(k protocol.Kind, from protocol.ReplicaID, v protocol.View, s protocol.Seq, d protocol.Digest) protocol.Message {
	return protocol.Message{Kind: k, From: from, View: v, Seq: s, Digest: d}
}

func viewChange(from protocol.ReplicaID, v protocol.View, stable protocol.Seq, prepared ...protocol.Prepared) protocol.Message {
	return protocol.Message{Kind: protocol.KindViewChange, From: from, View: v,
		ViewChange: &protocol.ViewChange{Stable: stable, Prepared: prepared}}
}

// broadcast sends m from self to every other replica through b.
func broadcast(b Behavior, self protocol.ReplicaID, m protocol.Message) []Out {
	var outs []Out
	for to := range protocol.ReplicaID(testN) {
		if to != self {
			outs = append(outs, b.Outgoing(Out{To: to, Msg: m})...)
		}
	}
	return outs
}

// deepCopy copies everything m refers to, to check that Outgoing leaves
// its input alone.
func deepCopy(m protocol.Message) protocol.Message {
	c := m
	c.Batch = copyBatch(m.Batch)
	if m.Request != nil {
		r := *m.Request
		r.Op = slices.Clone(r.Op)
		c.Request = &r
	}
	if m.ViewChange != nil {
		vc := *m.ViewChange
		vc.Prepared = slices.Clone(vc.Prepared)
		for i := range vc.Prepared {
			vc.Prepared[i].Q = slices.Clone(vc.Prepared[i].Q)
		}
		c.ViewChange = &vc
	}
	return c
}

func copyBatch(b []protocol.Request) []protocol.Request {
	c := slices.Clone(b)
	for i := range c {
		c[i].Op = slices.Clone(c[i].Op)
	}
	return c
}

// randomMessage is a message of any kind replica self might send, with
// small views and sequence numbers so that they repeat.
func randomMessage(rng *rand.Rand, self protocol.ReplicaID, i int) protocol.Message {
	v := protocol.View(rng.IntN(3))
	s := protocol.Seq(i/8 + 1)
	b := batch(fmt.Sprintf("put k%d %d", i, rng.IntN(10)), "get k")[:rng.IntN(3)]
	from := self
	if rng.IntN(8) == 0 {
		from = (self + 1) % testN
	}
	switch rng.IntN(7) {
	case 0:
		return prePrepare(from, v, s, b)
	case 1:
		return vote(protocol.KindPrepare, from, v, s, protocol.BatchDigest(b))
	case 2:
		return vote(protocol.KindCommit, from, v, s, protocol.BatchDigest(b))
	case 3:
		return vote(protocol.KindCheckpoint, from, 0, s, protocol.Digest{byte(i), 1})
	case 4:
		d := protocol.BatchDigest(b)
		return viewChange(from, v+1, s, protocol.Prepared{Seq: s + 1, PView: v, PDigest: d,
			Q: []protocol.PrePrepared{{View: v, Digest: d}}, Batches: []protocol.BatchOf{{Digest: d, Batch: b}}})
	case 5:
		return protocol.Message{Kind: protocol.KindRequest, Request: &protocol.Request{Client: 9, Timestamp: uint64(i), Op: []byte("op")}}
	default:
		return protocol.Message{Kind: protocol.KindReply, From: from, Reply: &protocol.Reply{Client: 9, Timestamp: uint64(i)}}
	}
}

// allParams are parameters for each behaviour that exercise its choices.
var allParams = map[string]map[string]string{
	Mutate: {"share": "50%"},
	Forge:  {"share": "50%"},
	Replay: {"rate": "0.5"},
	Silent: {"kinds": "commit,prepare"},
}

// run feeds count random messages (from rngSeed) to b, sent from self to
// random receivers, and returns what came out.
func run(t *testing.T, b Behavior, self protocol.ReplicaID, rngSeed uint64, count int) [][]Out {
	t.Helper()
	rng := rand.New(rand.NewPCG(rngSeed, 0))
	var all [][]Out
	for i := range count {
		m := randomMessage(rng, self, i)
		to := protocol.ReplicaID(rng.IntN(testN))
		before := deepCopy(m)
		outs := b.Outgoing(Out{To: to, Msg: m})
		if !reflect.DeepEqual(m, before) {
			t.Fatalf("%s: Outgoing changed its input %+v", b.Name(), before)
		}
		all = append(all, outs)
	}
	return all
}

func TestDeterministic(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			const self = 0
			a := run(t, mustNew(t, name, allParams[name], self, 42), self, 1, 3000)
			b := run(t, mustNew(t, name, allParams[name], self, 42), self, 1, 3000)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("same seed, same input: different output")
			}
			switch name {
			case Equivocate, Mutate, Forge, Replay, LieViewChange: // randomized
				c := run(t, mustNew(t, name, allParams[name], self, 43), self, 1, 3000)
				if reflect.DeepEqual(a, c) {
					t.Fatal("another seed: the same output")
				}
				d := run(t, mustNew(t, name, allParams[name], self+1, 42), self, 1, 3000)
				if name != LieViewChange && name != Equivocate && reflect.DeepEqual(a, d) {
					t.Fatal("another replica, the same seed: the same output")
				}
			}
		})
	}
}

func TestEquivocate(t *testing.T) {
	for seed := range uint64(20) {
		for _, b := range [][]protocol.Request{batch(), batch("a"), batch("a", "b", "c"), batch("x", "x")} {
			const self = 1 // primary of view 1
			e := mustNew(t, Equivocate, nil, self, seed)
			pp := prePrepare(self, 1, 5, b)
			got := map[protocol.ReplicaID]protocol.Digest{}
			digests := map[protocol.Digest]int{}
			for _, o := range broadcast(e, self, pp) {
				m := o.Msg
				if m.Kind != protocol.KindPrePrepare || m.View != 1 || m.Seq != 5 {
					t.Fatalf("pre-prepare changed beyond its batch: %+v", m)
				}
				if protocol.BatchDigest(m.Batch) != m.Digest {
					t.Fatalf("to %d: digest does not match the batch", o.To)
				}
				got[o.To] = m.Digest
				digests[m.Digest]++
			}
			if len(got) != testN-1 || len(digests) != 2 || digests[pp.Digest] == 0 {
				t.Fatalf("seed %d, batch %d: want two digests to %d receivers, the original among them: %v", seed, len(b), testN-1, digests)
			}
			if digests[pp.Digest] != 1 { // default share 50% of 3 backups: round(1.5) = 2 get the other
				t.Fatalf("want 2 alternatives and 1 original, got %v", digests)
			}
			// A retransmission goes the same way.
			for _, o := range broadcast(e, self, pp) {
				if o.Msg.Digest != got[o.To] {
					t.Fatalf("retransmission to %d: another digest", o.To)
				}
			}
			// Its commits follow what each receiver was pre-prepared.
			for _, k := range []protocol.Kind{protocol.KindPrepare, protocol.KindCommit} {
				for _, o := range broadcast(e, self, vote(k, self, 1, 5, pp.Digest)) {
					if o.Msg.Digest != got[o.To] {
						t.Fatalf("%s to %d: digest %x, pre-prepared %x", k, o.To, o.Msg.Digest, got[o.To])
					}
				}
			}
			// Others' messages, other views, other digests: untouched.
			for _, m := range []protocol.Message{
				vote(protocol.KindCommit, 2, 1, 5, pp.Digest),
				vote(protocol.KindCommit, self, 2, 5, pp.Digest),
				vote(protocol.KindCommit, self, 1, 5, protocol.Digest{1}),
				vote(protocol.KindCommit, self, 1, 6, pp.Digest),
				prePrepare(2, 1, 5, b),
			} {
				for _, o := range broadcast(e, self, m) {
					if !reflect.DeepEqual(o.Msg, m) || o.Forge {
						t.Fatalf("changed %+v", m)
					}
				}
			}
		}
	}
}

func TestEquivocateShare(t *testing.T) {
	for share, want := range map[string]int{"0%": 1, "100%": 2, "34%": 1, "0.67": 2} {
		e := mustNew(t, Equivocate, map[string]string{"share": share}, 0, 3)
		pp := prePrepare(0, 0, 1, batch("a", "b"))
		alt := 0
		for _, o := range broadcast(e, 0, pp) {
			if o.Msg.Digest != pp.Digest {
				alt++
			}
		}
		if alt != want {
			t.Errorf("share %s: %d of %d backups sent the alternative, want %d", share, alt, testN-1, want)
		}
	}
}

// differences lists the fields of a and b that differ, ops by request.
func differences(a, b protocol.Message) []string {
	var d []string
	if a.Kind != b.Kind || a.From != b.From {
		d = append(d, "kind/from")
	}
	if a.View != b.View {
		d = append(d, "view")
	}
	if a.Seq != b.Seq {
		d = append(d, "seq")
	}
	if a.Digest != b.Digest {
		d = append(d, "digest")
	}
	if len(a.Batch) != len(b.Batch) {
		d = append(d, "batch length")
	} else {
		for i := range a.Batch {
			if !reflect.DeepEqual(a.Batch[i], b.Batch[i]) {
				d = append(d, fmt.Sprintf("batch[%d]", i))
			}
		}
	}
	if !reflect.DeepEqual(a.Request, b.Request) {
		d = append(d, "request")
	}
	if !reflect.DeepEqual(a.ViewChange, b.ViewChange) || !reflect.DeepEqual(a.Reply, b.Reply) ||
		!reflect.DeepEqual(a.NewView, b.NewView) || !reflect.DeepEqual(a.State, b.State) || !reflect.DeepEqual(a.Auth, b.Auth) {
		d = append(d, "other")
	}
	return d
}

func TestMutate(t *testing.T) {
	u := mustNew(t, Mutate, map[string]string{"share": "100%"}, 0, 9)
	rng := rand.New(rand.NewPCG(5, 5))
	seen := map[string]int{}
	for i := range 5000 {
		m := randomMessage(rng, 0, i)
		outs := u.Outgoing(Out{To: 1, Msg: m})
		if len(outs) != 1 || outs[0].To != 1 || outs[0].Forge {
			t.Fatalf("want one message to 1, got %+v", outs)
		}
		d := differences(m, outs[0].Msg)
		switch m.Kind {
		case protocol.KindReply:
			if len(d) != 0 {
				t.Fatalf("reply changed: %v", d)
			}
			continue
		}
		if len(d) != 1 || d[0] == "other" || d[0] == "kind/from" || d[0] == "batch length" {
			t.Fatalf("%s: want one field changed, got %v", m.Kind, d)
		}
		seen[strings.TrimRight(d[0], "[0123456789]")]++
	}
	for _, f := range []string{"view", "seq", "digest", "batch", "request"} {
		if seen[f] == 0 {
			t.Errorf("never mutated %s: %v", f, seen)
		}
	}
}

func TestMutateKindsAndShare(t *testing.T) {
	u := mustNew(t, Mutate, map[string]string{"share": "50%", "kinds": "prepare,commit"}, 0, 9)
	rng := rand.New(rand.NewPCG(5, 5))
	changed := map[protocol.Kind]int{}
	total := map[protocol.Kind]int{}
	for i := range 5000 {
		m := randomMessage(rng, 0, i)
		o := u.Outgoing(Out{To: 2, Msg: m})
		total[m.Kind]++
		if len(differences(m, o[0].Msg)) > 0 {
			changed[m.Kind]++
		}
	}
	for k, c := range changed {
		if k != protocol.KindPrepare && k != protocol.KindCommit {
			t.Errorf("%s mutated %d times", k, c)
		}
		if c < total[k]*4/10 || c > total[k]*6/10 {
			t.Errorf("%s: %d of %d mutated, want about half", k, c, total[k])
		}
	}
	if changed[protocol.KindPrepare] == 0 || changed[protocol.KindCommit] == 0 {
		t.Errorf("prepares and commits not mutated: %v", changed)
	}
	u = mustNew(t, Mutate, map[string]string{"share": "0"}, 0, 9)
	for i := range 1000 {
		m := randomMessage(rng, 0, i)
		if o := u.Outgoing(Out{To: 2, Msg: m}); len(differences(m, o[0].Msg)) > 0 {
			t.Fatal("share 0 mutated")
		}
	}
}

func TestMutateDigestFromRecent(t *testing.T) {
	u := mustNew(t, Mutate, map[string]string{"share": "100%", "kinds": "checkpoint"}, 0, 1)
	recent := map[protocol.Digest]bool{}
	for i := range 10 {
		d := protocol.Digest{byte(i)}
		recent[d] = true
		u.Outgoing(Out{To: 1, Msg: vote(protocol.KindPrepare, 0, 0, 1, d)}) // not mutated: remembered
	}
	fromRecent := 0
	for range 200 {
		m := vote(protocol.KindCheckpoint, 0, 0, 10, protocol.Digest{99})
		o := u.Outgoing(Out{To: 1, Msg: m})[0].Msg
		if o.Digest != m.Digest && o.Digest != (protocol.Digest{99}) {
			if !recent[o.Digest] {
				t.Fatalf("digest %x not a recent one", o.Digest[:2])
			}
			fromRecent++
		}
	}
	if fromRecent == 0 {
		t.Fatal("never swapped in a recent digest")
	}
}

func TestForge(t *testing.T) {
	f := mustNew(t, Forge, nil, 2, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 1000 {
		m := randomMessage(rng, 2, i)
		o := f.Outgoing(Out{To: 3, Msg: m})
		if len(o) != 1 || !o[0].Forge || o[0].To != 3 || !reflect.DeepEqual(o[0].Msg, m) {
			t.Fatalf("want the message unchanged with Forge, got %+v", o)
		}
	}
	f = mustNew(t, Forge, map[string]string{"share": "50%", "kinds": "commit"}, 2, 1)
	forged, commits := 0, 0
	for i := range 2000 {
		m := randomMessage(rng, 2, i)
		o := f.Outgoing(Out{To: 3, Msg: m})[0]
		if m.Kind == protocol.KindCommit {
			commits++
		}
		if o.Forge {
			if m.Kind != protocol.KindCommit {
				t.Fatalf("forged a %s", m.Kind)
			}
			forged++
		}
	}
	if forged < commits*4/10 || forged > commits*6/10 {
		t.Fatalf("forged %d of %d commits, want about half", forged, commits)
	}
}

func TestReplay(t *testing.T) {
	p := mustNew(t, Replay, map[string]string{"rate": "1"}, 0, 1)
	sent := map[protocol.Seq]bool{}
	for i := range 1000 {
		m := vote(protocol.KindCommit, 0, 0, protocol.Seq(i+1), protocol.Digest{byte(i)})
		m.Auth = protocol.Auth{Sig: []byte("sig")}
		outs := p.Outgoing(Out{To: 3, Msg: m})
		if !reflect.DeepEqual(outs[0], Out{To: 3, Msg: m}) {
			t.Fatal("the new message not sent first, unchanged")
		}
		if i == 0 {
			if len(outs) != 1 {
				t.Fatal("replayed from an empty past")
			}
		} else {
			if len(outs) != 2 {
				t.Fatalf("rate 1: want the message and a replay, got %d", len(outs))
			}
			r := outs[1]
			if r.To != 3 || !sent[r.Msg.Seq] || int(r.Msg.Seq) <= i-replayWindow || r.Msg.Auth.Sig != nil {
				t.Fatalf("replayed %+v: not one of the last %d sent, to the receiver, without its old authenticator", r, replayWindow)
			}
		}
		sent[m.Seq] = true
	}
	p = mustNew(t, Replay, map[string]string{"rate": "0%"}, 0, 1)
	for i := range 100 {
		if outs := p.Outgoing(Out{To: 1, Msg: vote(protocol.KindPrepare, 0, 0, protocol.Seq(i), protocol.Digest{})}); len(outs) != 1 {
			t.Fatal("rate 0 replayed")
		}
	}
}

func TestSilent(t *testing.T) {
	s := mustNew(t, Silent, map[string]string{"kinds": "commit"}, 0, 1)
	all := mustNew(t, Silent, nil, 0, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 1000 {
		m := randomMessage(rng, 0, i)
		o := s.Outgoing(Out{To: 1, Msg: m})
		if m.Kind == protocol.KindCommit {
			if len(o) != 0 {
				t.Fatal("sent a commit")
			}
		} else if len(o) != 1 || !reflect.DeepEqual(o[0], Out{To: 1, Msg: m}) {
			t.Fatalf("%s: dropped or changed", m.Kind)
		}
		if o := all.Outgoing(Out{To: 1, Msg: m}); len(o) != 0 {
			t.Fatalf("silent sent a %s", m.Kind)
		}
	}
}

func TestLieViewChange(t *testing.T) {
	d1, d2 := protocol.BatchDigest(batch("a")), protocol.BatchDigest(batch("b"))
	genuine := []protocol.Prepared{
		{Seq: 11, PView: 2, PDigest: d1, Q: []protocol.PrePrepared{{View: 2, Digest: d1}}},
		{Seq: 12, Q: []protocol.PrePrepared{{View: 1, Digest: d2}}},
	}
	for i := range genuine { // room to append in place: a rewrite must not
		genuine[i].Q = slices.Grow(genuine[i].Q, 4)
	}
	type claim struct { // a P claim
		Seq     protocol.Seq
		PView   protocol.View
		PDigest protocol.Digest
	}
	claims := func(ps []protocol.Prepared) map[claim]bool {
		c := map[claim]bool{}
		for _, p := range ps {
			c[claim{p.Seq, p.PView, p.PDigest}] = true
		}
		return c
	}
	const self = 2
	for seed := range uint64(50) {
		for _, in := range [][]protocol.Prepared{nil, genuine} {
			l := mustNew(t, LieViewChange, nil, self, seed)
			m := viewChange(self, 4, 10, in...)
			before := deepCopy(m)
			o := l.Outgoing(Out{To: 0, Msg: m})
			if !reflect.DeepEqual(m, before) {
				t.Fatal("changed its input")
			}
			if len(o) != 1 || o[0].To != 0 || o[0].Msg.View != 4 || o[0].Msg.ViewChange.Stable != 10 {
				t.Fatalf("want one view change for view 4: %+v", o)
			}
			out := o[0].Msg.ViewChange.Prepared
			in, got := claims(in), claims(out)
			var forged []claim
			for c := range got {
				if !in[c] {
					forged = append(forged, c)
				}
			}
			if len(forged) != 1 || forged[0].PView != 3 || forged[0].PDigest == d1 || forged[0].PDigest == d2 ||
				forged[0].Seq < 11 || forged[0].Seq > 13 {
				t.Fatalf("seed %d: want one forged claim in view 3 at seq 11..13, got %+v", seed, forged)
			}
			if len(out) < len(in) {
				t.Fatal("lost entries")
			}
			for _, p := range out {
				if p.Seq == forged[0].Seq && !slices.Contains(p.Q, protocol.PrePrepared{View: 3, Digest: forged[0].PDigest}) {
					t.Fatal("forged claim not pre-prepared too")
				}
			}
			// Another lie about the same input leaves this one alone.
			kept := deepCopy(o[0].Msg)
			l.Outgoing(Out{To: 1, Msg: m})
			if !reflect.DeepEqual(o[0].Msg, kept) {
				t.Fatal("a later lie changed an earlier one: shared slices")
			}
		}
	}
	l := mustNew(t, LieViewChange, map[string]string{"mode": "stale"}, self, 1)
	m := viewChange(self, 4, 10, genuine...)
	if o := l.Outgoing(Out{To: 0, Msg: m}); len(o) != 1 || len(o[0].Msg.ViewChange.Prepared) != 0 ||
		o[0].Msg.ViewChange.Stable != 10 || len(m.ViewChange.Prepared) != 2 {
		t.Fatalf("stale: want no prepared entries (input untouched), got %+v", o[0].Msg.ViewChange)
	}
	// Others' view changes and other kinds: untouched.
	for _, m := range []protocol.Message{viewChange(self+1, 4, 10, genuine...), vote(protocol.KindCommit, self, 3, 11, d1),
		{Kind: protocol.KindViewChange, From: self, View: 4}} {
		for _, mode := range []string{"stale", "forge"} {
			l := mustNew(t, LieViewChange, map[string]string{"mode": mode}, self, 1)
			if o := l.Outgoing(Out{To: 0, Msg: m}); len(o) != 1 || !reflect.DeepEqual(o[0].Msg, m) {
				t.Fatalf("%s: changed %+v", mode, m)
			}
		}
	}
}

func TestTwin(t *testing.T) {
	for _, name := range Names() {
		if IsTwin(name) != (name == Twin) {
			t.Errorf("IsTwin(%q) = %v", name, IsTwin(name))
		}
	}
	tw := mustNew(t, Twin, nil, 0, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 100 {
		m := randomMessage(rng, 0, i)
		if o := tw.Outgoing(Out{To: 2, Msg: m}); len(o) != 1 || !reflect.DeepEqual(o[0], Out{To: 2, Msg: m}) {
			t.Fatal("twin changed a message")
		}
	}
}

// TestBounded sends 100k messages (sequence numbers always growing)
// through each behaviour: at most two out per message, and its state
// stays within its bounds.
func TestBounded(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b := mustNew(t, name, allParams[name], 0, 7)
			rng := rand.New(rand.NewPCG(3, 3))
			for i := range 100_000 {
				m := randomMessage(rng, 0, i)
				if o := b.Outgoing(Out{To: 1 + protocol.ReplicaID(i%(testN-1)), Msg: m}); len(o) > 2 {
					t.Fatalf("%d messages out for one", len(o))
				}
			}
			switch b := b.(type) {
			case *equivocate:
				if len(b.alts) != maxAlts || len(b.order) != maxAlts {
					t.Fatalf("%d alternatives kept, want %d", len(b.alts), maxAlts)
				}
			case *mutate:
				if b.nrec != recentDigests {
					t.Fatalf("%d recent digests", b.nrec)
				}
			case *replay:
				if b.n != replayWindow {
					t.Fatalf("%d past messages", b.n)
				}
			}
		})
	}
}

func TestErrorsOneLine(t *testing.T) {
	bad := []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"", nil, `unknown behavior ""`},
		{"nope", nil, `unknown behavior "nope"`},
		{Silent, map[string]string{"": "x"}, `silent: unknown parameter ""`},
		{Forge, map[string]string{"share": "1%%"}, `forge: share "1%%"`},
		{Mutate, map[string]string{"kinds": "kind-11"}, `unknown kind "kind-11"`},
		{Replay, map[string]string{"rate": "+Inf"}, `replay: rate "+Inf"`},
	}
	for _, c := range bad {
		err := Validate(c.name, c.params)
		_, newErr := New(c.name, c.params, 0, testN, 1)
		if err == nil || newErr == nil || err.Error() != newErr.Error() {
			t.Errorf("%s %v: Validate %v, New %v", c.name, c.params, err, newErr)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") ||
			!strings.HasPrefix(err.Error(), "byzantine: ") {
			t.Errorf("%s %v: %q, want one line with %q", c.name, c.params, err, c.want)
		}
	}
}
