package pbft

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/pbftcheck"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

const (
	// checkTick drives the liveness deadlines when nothing else happens.
	checkTick = time.Second
	// maxEvidenceBatch bounds the requests of a batch a violation names.
	maxEvidenceBatch = 8
)

// checks feeds the pure checkers (package pbftcheck) from the replicas'
// loops and the clients, under one lock, and reports what they find.
type checks struct {
	c  *Cluster
	mu sync.Mutex
	ck *pbftcheck.Checker
	// faults in force (a window closes when the last one ends)
	faults int
	stable protocol.Seq
}

// newChecks sets the liveness bounds after a fault window closes: a
// commit within t1 and every request pending then finished within t2.
func newChecks(c *Cluster, t1, t2 time.Duration) *checks {
	return &checks{c: c, ck: pbftcheck.New(pbftcheck.Options{N: c.n, F: c.f, T1: t1, T2: t2})}
}

func (k *checks) report(vs []pbftcheck.Violation) {
	for _, v := range vs {
		k.c.m.violations.WithLabelValues("pbft", v.Invariant).Inc()
		fields := map[string]any{"component": "pbft", "invariant": v.Invariant, "detail": v.Detail,
			"replica": k.c.nodes[v.Replica].Name(), "seq": uint64(v.Seq)}
		if int(v.Other) < len(k.c.nodes) && v.Other != v.Replica {
			fields["other_replica"] = k.c.nodes[v.Other].Name()
		}
		if v.Digest != (protocol.Digest{}) {
			fields["digest"] = hex.EncodeToString(v.Digest[:8])
		}
		if v.OtherDigest != (protocol.Digest{}) {
			fields["other_digest"] = hex.EncodeToString(v.OtherDigest[:8])
		}
		if v.Client != 0 || v.Timestamp != 0 {
			fields["client"], fields["timestamp"] = v.Client, v.Timestamp
		}
		if len(v.Batch) > 0 {
			fields["batch"] = batchEvidence(v.Batch)
		}
		if len(v.OtherBatch) > 0 {
			fields["other_batch"] = batchEvidence(v.OtherBatch)
		}
		k.c.log.Error("pbft invariant violated", "invariant", v.Invariant, "detail", v.Detail)
		k.c.event(components.EventInvariantViolation, fields)
	}
}

// batchEvidence names a batch's first requests for the journal.
func batchEvidence(b []protocol.Request) []string {
	out := make([]string, 0, min(len(b), maxEvidenceBatch))
	for _, r := range b[:min(len(b), maxEvidenceBatch)] {
		out = append(out, fmt.Sprintf("client %d ts %d op %x", r.Client, r.Timestamp, r.Op[:min(len(r.Op), 16)]))
	}
	return out
}

func (k *checks) executed(id protocol.ReplicaID, cs []protocol.Committed) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range cs {
		e := pbftcheck.Execution{Replica: id, View: x.View, Seq: x.Seq, Digest: x.Digest, Requests: x.Batch, Results: x.Results}
		if slices.Contains(x.Executed, false) { // only what this batch executed
			e.Requests, e.Results = nil, nil
			for i, done := range x.Executed {
				if done {
					e.Requests, e.Results = append(e.Requests, x.Batch[i]), append(e.Results, x.Results[i])
				}
			}
		}
		k.report(k.ck.Executed(now, e))
	}
}

func (k *checks) checkpointed(id protocol.ReplicaID, cp protocol.Checkpoint, stable protocol.Seq) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if cp.Seq > 0 {
		k.report(k.ck.Checkpoint(id, cp.Seq, cp.Digest))
	}
	if stable > k.stable {
		k.stable = stable
		k.ck.Stable(stable)
	}
}

func (k *checks) restored(id protocol.ReplicaID, seq protocol.Seq) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ck.Restored(id, seq)
}

func (k *checks) issued(r *protocol.Request) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.report(k.ck.Issued(now, r.Client, r.Timestamp, pbftcheck.OpDigest(r.Op)))
}

func (k *checks) accepted(client, ts uint64, result []byte) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.report(k.ck.Accepted(now, client, ts, result))
}

func (k *checks) byzantine(id protocol.ReplicaID, on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ck.SetByzantine(id, on)
}

// faultInjected and faultReverted bracket fault windows: liveness is
// measured from the moment no fault is in force.
func (k *checks) faultInjected() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.faults++; k.faults == 1 {
		k.report(k.ck.FaultStarted(time.Now()))
	}
}

func (k *checks) faultReverted() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.faults == 0 {
		return
	}
	if k.faults--; k.faults == 0 {
		k.report(k.ck.FaultEnded(time.Now()))
	}
}

func (k *checks) tick() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.report(k.ck.Tick(time.Now()))
	if r := k.ck.LastRecovery(); r.Committed {
		k.c.m.recovery.WithLabelValues("commit").Set(r.Commit.Seconds())
		if r.Drained {
			k.c.m.recovery.WithLabelValues("drain").Set(r.Drain.Seconds())
		}
	}
}

func (k *checks) recovery() pbftcheck.Recovery {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ck.LastRecovery()
}

// FaultInjected and FaultReverted (faults.Observer) open and close the
// liveness checker's fault windows.
func (c *Cluster) FaultInjected(string, string) { c.checks.faultInjected() }
func (c *Cluster) FaultReverted(string, string) { c.checks.faultReverted() }
