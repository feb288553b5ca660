package pbftcheck

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

var t0 = simBase

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func req(c, ts uint64) protocol.Request {
	return protocol.Request{Client: c, Timestamp: ts, Op: simOp(c, ts)}
}

// exec is replica r executing the requests at seq, with the true digest
// and results.
func exec(r protocol.ReplicaID, seq protocol.Seq, reqs ...protocol.Request) Execution {
	res := make([][]byte, len(reqs))
	for i, q := range reqs {
		res[i] = simResult(q.Client, q.Timestamp)
	}
	return Execution{Replica: r, Seq: seq, Digest: protocol.BatchDigest(reqs), Requests: reqs, Results: res}
}

func issue(c *Checker, ms int, reqs ...protocol.Request) {
	for _, q := range reqs {
		if vs := c.Issued(at(ms), q.Client, q.Timestamp, OpDigest(q.Op)); vs != nil {
			panic(fmt.Sprint(vs))
		}
	}
}

// expect checks that vs is exactly one violation of inv whose detail
// contains sub.
func expect(t *testing.T, vs []Violation, inv, sub string) Violation {
	t.Helper()
	if len(vs) != 1 || vs[0].Invariant != inv || !strings.Contains(vs[0].Detail, sub) {
		t.Fatalf("want one %s (%q), got %v", inv, sub, vs)
	}
	return vs[0]
}

func none(t *testing.T, vs []Violation) {
	t.Helper()
	if len(vs) != 0 {
		t.Fatalf("want no violation, got %v", vs)
	}
}

func TestAgreementEitherOrder(t *testing.T) {
	for _, first := range []protocol.ReplicaID{0, 1} {
		c := New(Options{N: 4, F: 1})
		issue(c, 0, req(1, 1), req(2, 1))
		a, b := exec(0, 1, req(1, 1)), exec(1, 1, req(2, 1))
		if first == 1 {
			a, b = b, a
		}
		none(t, c.Executed(at(1), a))
		v := expect(t, c.Executed(at(2), b), InvAgreement, "seq 1")
		if v.Replica != b.Replica || v.Other != a.Replica || v.Digest != b.Digest || v.OtherDigest != a.Digest ||
			v.Seq != 1 || len(v.Batch) != 1 || len(v.OtherBatch) != 1 {
			t.Fatalf("evidence: %+v", v)
		}
		// A third replica agreeing with the first: fine; with the second:
		// compared with the first, a violation again.
		none(t, c.Executed(at(3), Execution{Replica: 2, Seq: 1, Digest: a.Digest}))
		expect(t, c.Executed(at(3), Execution{Replica: 3, Seq: 1, Digest: b.Digest}), InvAgreement, "replica 3")
	}
}

// TestAgreementAfterStable: a lagging correct replica's divergent report
// is caught after Stable passed its seq while the seq is within Window
// below the stable checkpoint; below that it is counted Late, unchecked.
func TestAgreementAfterStable(t *testing.T) {
	c := New(Options{N: 4, F: 1, Window: 8})
	for s := protocol.Seq(1); s <= 20; s++ {
		for r := range protocol.ReplicaID(3) {
			none(t, c.Executed(at(int(s)), Execution{Replica: r, Seq: s, Digest: protocol.Digest{byte(s)}}))
		}
	}
	c.Stable(10)
	expect(t, c.Executed(at(30), Execution{Replica: 3, Seq: 5, Digest: protocol.Digest{0xee}}), InvAgreement, "seq 5")
	// Replica 3's report shows it passed seqs up to 5: held 6..20.
	if st := c.Stats(); st.Seqs != 15 || st.Late != 0 {
		t.Fatalf("held seqs 6..20: %+v", st)
	}
	c.Stable(20) // drops seqs <= 12
	none(t, c.Executed(at(31), Execution{Replica: 3, Seq: 12, Digest: protocol.Digest{0xee}}))
	if st := c.Stats(); st.Late != 1 || st.Seqs != 8 {
		t.Fatalf("seq 12 below the window: %+v", st)
	}
	expect(t, c.Executed(at(32), Execution{Replica: 3, Seq: 13, Digest: protocol.Digest{0xee}}), InvAgreement, "seq 13")
}

// TestAgreementAllPassed: a seq every replica executed is dropped without
// Stable; a Byzantine replica's frozen progress holds records back.
func TestAgreementAllPassed(t *testing.T) {
	c := New(Options{N: 3})
	for r := range protocol.ReplicaID(3) {
		none(t, c.Executed(at(1), Execution{Replica: r, Seq: 1}))
	}
	if st := c.Stats(); st.Seqs != 0 {
		t.Fatalf("seq 1 held: %+v", st)
	}
	c.SetByzantine(2, true)
	for s := protocol.Seq(2); s <= 5; s++ {
		for r := range protocol.ReplicaID(3) {
			d := protocol.Digest{byte(s)}
			if r == 2 {
				d[1] = 0xff // ignored
			}
			none(t, c.Executed(at(int(s)), Execution{Replica: r, Seq: s, Digest: d}))
		}
	}
	if st := c.Stats(); st.Seqs != 4 || st.Ignored != 4 {
		t.Fatalf("seqs 2..5 held for replica 2: %+v", st)
	}
	c.SetByzantine(2, false)
	expect(t, c.Executed(at(6), Execution{Replica: 2, Seq: 2, Digest: protocol.Digest{9}}), InvAgreement, "seq 2")
}

func TestIntegrity(t *testing.T) {
	c := New(Options{N: 4, F: 1})
	issue(c, 0, req(1, 1), req(1, 2))
	none(t, c.Executed(at(1), exec(0, 1, req(1, 1))))
	none(t, c.Executed(at(2), exec(0, 2, req(1, 2))))
	v := expect(t, c.Executed(at(3), exec(0, 3, req(1, 2))), InvIntegrity, "timestamp 2 again at seq 3")
	if v.Replica != 0 || v.Client != 1 || v.Timestamp != 2 || v.Seq != 3 {
		t.Fatalf("evidence %+v", v)
	}
	expect(t, c.Executed(at(4), exec(0, 4, req(1, 1))), InvIntegrity, "after timestamp 2")
	// Within one batch.
	issue(c, 5, req(2, 1))
	expect(t, c.Executed(at(5), exec(1, 10, req(2, 1), req(2, 1))), InvIntegrity, "client 2 timestamp 1 again")
	// Another replica executing the same request: fine.
	none(t, c.Executed(at(6), exec(2, 1, req(1, 1))))
}

// TestIntegrityRestored: after Restored(r, s), r re-executing what it had
// executed above s is not a duplicate; what it executed at or below s is.
func TestIntegrityRestored(t *testing.T) {
	c := New(Options{N: 1})
	issue(c, 0, req(1, 1), req(2, 1))
	none(t, c.Executed(at(1), exec(0, 1, req(1, 1))))
	none(t, c.Executed(at(2), exec(0, 2, req(2, 1))))
	c.Restored(0, 1)
	none(t, c.Executed(at(3), exec(0, 2, req(2, 1))))
	expect(t, c.Executed(at(4), exec(0, 3, req(1, 1))), InvIntegrity, "again")
}

func TestValidity(t *testing.T) {
	c := New(Options{N: 4, F: 1})
	issue(c, 0, req(1, 1), req(2, 1), req(3, 1))
	v := expect(t, c.Executed(at(1), exec(0, 1, req(1, 1), req(9, 1))), InvValidity, "client 9 timestamp 1 at seq 1, never issued")
	if v.Replica != 0 || v.Client != 9 || v.Timestamp != 1 {
		t.Fatalf("evidence %+v", v)
	}
	forged := req(2, 1)
	forged.Op = []byte("forged")
	expect(t, c.Executed(at(2), exec(0, 2, forged)), InvValidity, "with op")
	// Accepted reply differing: accepted after the execution...
	none(t, c.Executed(at(3), exec(1, 3, req(1, 1))))
	v = expect(t, c.Accepted(at(4), 1, 1, []byte("wrong")), InvValidity, "accepted reply \"wrong\"")
	if string(v.Result) != "wrong" || string(v.OtherResult) != "res-1-1" {
		t.Fatalf("evidence %+v", v)
	}
	// ...and before it.
	none(t, c.Accepted(at(5), 3, 1, []byte("wrong")))
	expect(t, c.Executed(at(6), exec(0, 4, req(3, 1))), InvValidity, "accepted reply")
	// A reply accepted for a request never issued.
	expect(t, c.Accepted(at(7), 4, 1, nil), InvValidity, "never issued")
}

// TestValidityForgotten: requests forgotten (done, or evicted) are counted
// Unverified when executed again, never reported as never issued.
func TestValidityForgotten(t *testing.T) {
	c := New(Options{N: 3, MaxPending: 2})
	c.SetByzantine(2, true)
	issue(c, 0, req(1, 1))
	none(t, c.Executed(at(1), exec(0, 1, req(1, 1))))
	none(t, c.Accepted(at(2), 1, 1, simResult(1, 1)))
	none(t, c.Executed(at(3), exec(1, 1, req(1, 1))))
	if st := c.Stats(); st.Requests != 0 || st.Forgotten != 1 {
		t.Fatalf("not forgotten: %+v", st)
	}
	c.SetByzantine(2, false)
	none(t, c.Executed(at(4), exec(2, 1, req(1, 1))))
	issue(c, 5, req(2, 1), req(2, 2), req(2, 3)) // evicts (2,1)
	none(t, c.Executed(at(6), exec(0, 2, req(2, 1))))
	if st := c.Stats(); st.EvictedRequests != 1 || st.Unverified != 2 || st.Pending != 2 {
		t.Fatalf("%+v", st)
	}
}

func TestCheckpoint(t *testing.T) {
	c := New(Options{N: 4, F: 1, Window: 4})
	none(t, c.Checkpoint(0, 8, protocol.Digest{1}))
	none(t, c.Checkpoint(1, 8, protocol.Digest{1}))
	v := expect(t, c.Checkpoint(2, 8, protocol.Digest{2}), InvCheckpoint, "checkpoint 8")
	if v.Replica != 2 || v.Other != 0 || v.Digest != (protocol.Digest{2}) || v.OtherDigest != (protocol.Digest{1}) {
		t.Fatalf("evidence %+v", v)
	}
	c.Stable(11)
	expect(t, c.Checkpoint(3, 8, protocol.Digest{3}), InvCheckpoint, "replica 3")
	c.Stable(16)
	none(t, c.Checkpoint(3, 8, protocol.Digest{3}))
	if st := c.Stats(); st.LateCheckpoints != 1 || st.Checkpoints != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestByzantineIgnored: every kind of bad report by a replica marked
// Byzantine is ignored, and counted.
func TestByzantineIgnored(t *testing.T) {
	c := New(Options{N: 4, F: 1})
	issue(c, 0, req(1, 1))
	none(t, c.Executed(at(1), exec(0, 1, req(1, 1))))
	c.SetByzantine(3, true)
	if !c.Byzantine(3) {
		t.Fatal("not marked")
	}
	bad := exec(3, 1, req(1, 1), req(1, 1), req(9, 9))
	bad.Results[0] = []byte("bad")
	none(t, c.Executed(at(2), bad))
	none(t, c.Checkpoint(3, 1, protocol.Digest{7}))
	none(t, c.Checkpoint(0, 1, protocol.Digest{1}))
	none(t, c.Executed(at(3), Execution{Replica: 9, Seq: 1})) // out of range
	st := c.Stats()
	if st.Ignored != 3 || st.Executions != 1 {
		t.Fatalf("%+v", st)
	}
	c.SetByzantine(3, false)
	expect(t, c.Checkpoint(3, 1, protocol.Digest{7}), InvCheckpoint, "replica 3")
}

func TestLivenessCommitMissed(t *testing.T) {
	c := New(Options{N: 4, F: 1, T1: 10 * time.Millisecond, T2: 100 * time.Millisecond})
	none(t, c.FaultStarted(at(0)))
	issue(c, 1, req(1, 1))
	none(t, c.FaultEnded(at(10)))
	none(t, c.Tick(at(20)))
	v := expect(t, c.Tick(at(21)), InvLiveness, "no commit")
	if !v.FaultEnded.Equal(at(10)) || v.Pending != 0 {
		t.Fatalf("evidence %+v", v)
	}
	none(t, c.Tick(at(22))) // once
	none(t, c.Executed(at(25), exec(0, 1, req(1, 1))))
	none(t, c.Accepted(at(30), 1, 1, simResult(1, 1)))
	r := c.LastRecovery()
	want := Recovery{FaultEnded: at(10), Pending: 1, Commit: 15 * time.Millisecond, Committed: true,
		Drain: 20 * time.Millisecond, Drained: true, CommitMissed: true}
	if r != want {
		t.Fatalf("recovery %+v, want %+v", r, want)
	}
}

func TestLivenessDrainMissed(t *testing.T) {
	c := New(Options{N: 4, F: 1, T1: 10 * time.Millisecond, T2: 50 * time.Millisecond})
	issue(c, 0, req(1, 1), req(2, 1))
	none(t, c.FaultEnded(at(10)))
	none(t, c.Executed(at(15), exec(0, 1, req(1, 1), req(2, 1))))
	none(t, c.Accepted(at(20), 1, 1, simResult(1, 1)))
	if r := c.LastRecovery(); !r.Open || r.Drained || !r.Committed || r.Commit != 5*time.Millisecond {
		t.Fatalf("%+v", r)
	}
	// The event after the deadline finds it, before finishing the request.
	v := expect(t, c.Accepted(at(61), 2, 1, simResult(2, 1)), InvLiveness, "1 of 2 requests")
	if v.Pending != 1 {
		t.Fatalf("evidence %+v", v)
	}
	if r := c.LastRecovery(); r.Open || !r.Drained || r.Drain != 51*time.Millisecond || !r.DrainMissed {
		t.Fatalf("%+v", r)
	}
}

// TestLivenessNothingPending: with nothing pending when the fault ends the
// commit deadline runs from the first request issued after it; a new fault
// aborts the measurement.
func TestLivenessNothingPending(t *testing.T) {
	c := New(Options{N: 1, T1: 10 * time.Millisecond, T2: 10 * time.Millisecond})
	none(t, c.FaultEnded(at(0)))
	none(t, c.Tick(at(100)))
	issue(c, 100, req(1, 1))
	none(t, c.Tick(at(110)))
	expect(t, c.Tick(at(111)), InvLiveness, "no commit")
	none(t, c.FaultStarted(at(120)))
	if r := c.LastRecovery(); r.Open || !r.Aborted || r.Committed || !r.Drained || r.Drain != 0 || r.Pending != 0 {
		t.Fatalf("%+v", r)
	}
	none(t, c.Tick(at(1000))) // no deadline during a fault
}

// TestLivenessDisabled: zero T1 and T2 measure without deadlines.
func TestLivenessDisabled(t *testing.T) {
	c := New(Options{N: 1})
	issue(c, 0, req(1, 1))
	none(t, c.FaultEnded(at(0)))
	none(t, c.Tick(at(1e6)))
	none(t, c.Executed(at(1e6), exec(0, 1, req(1, 1))))
	none(t, c.Accepted(at(2e6), 1, 1, simResult(1, 1)))
	if r := c.LastRecovery(); r.Commit != 1000*time.Second || r.Drain != 2000*time.Second {
		t.Fatalf("%+v", r)
	}
}

// TestCaps: MaxSeqs, MaxPending and MaxClients evict and count, and an
// eviction never causes a false alarm.
func TestCaps(t *testing.T) {
	c := New(Options{N: 2, Window: 100, MaxSeqs: 3, MaxPending: 2, MaxClients: 2})
	for s := protocol.Seq(1); s <= 5; s++ {
		none(t, c.Executed(at(int(s)), Execution{Replica: 0, Seq: s}))
	}
	none(t, c.Executed(at(6), Execution{Replica: 1, Seq: 1, Digest: protocol.Digest{1}})) // evicted: late
	expect(t, c.Executed(at(7), Execution{Replica: 1, Seq: 3, Digest: protocol.Digest{1}}), InvAgreement, "seq 3")
	issue(c, 8, req(1, 1), req(2, 1), req(3, 1)) // evicts client 1 and request (1,1)
	none(t, c.Executed(at(9), exec(0, 6, req(1, 1))))
	st := c.Stats()
	if st.EvictedSeqs != 2 || st.Late != 1 || st.EvictedRequests != 1 || st.EvictedClients == 0 || st.Unverified != 1 ||
		st.Seqs > 3 || st.Pending > 2 || st.Clients > 2 {
		t.Fatalf("%+v", st)
	}
}
