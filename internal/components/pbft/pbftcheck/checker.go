package pbftcheck

import (
	"bytes"
	"container/heap"
	"container/list"
	"crypto/sha256"
	"fmt"
	"maps"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// Invariant names, as in Violation.Invariant and the
// soakd_invariant_violations_total{invariant} label.
const (
	InvAgreement  = "pbft_agreement"
	InvIntegrity  = "pbft_integrity"
	InvValidity   = "pbft_validity"
	InvCheckpoint = "pbft_checkpoint"
	InvLiveness   = "pbft_liveness"
)

// Invariants lists the invariant names in a fixed order.
var Invariants = []string{InvAgreement, InvIntegrity, InvValidity, InvCheckpoint, InvLiveness}

// Defaults for zero Options fields.
const (
	DefaultWindow     protocol.Seq = 512
	DefaultMaxPending              = 1 << 16
	DefaultMaxClients              = 1 << 14
)

// Options configures a Checker. N is required; zero fields take defaults.
type Options struct {
	// N is the number of replicas (IDs 0..N-1); F the number of faults
	// tolerated (informational: the checker trusts SetByzantine, not F).
	N, F int
	// Window is how many sequence numbers below the stable checkpoint
	// are still held, so that a lagging correct replica's report there
	// is still checked (agreement and checkpoints). Default
	// DefaultWindow. Set it above the longest lag of a correct replica
	// behind the stable checkpoint that should still be checked.
	Window protocol.Seq
	// MaxSeqs caps the sequence-number records held (and, separately,
	// the checkpoint records); past it the lowest is evicted and counted.
	// Default 8*Window + 1024.
	MaxSeqs int
	// MaxPending caps the request records not tied to a held sequence
	// number: issued but not executed by a correct replica, or executed
	// but not yet accepted after their sequence number was dropped.
	// Oldest first evicted past it and counted. Default DefaultMaxPending.
	MaxPending int
	// MaxClients caps the clients tracked (integrity's last timestamp per
	// replica and validity's forgotten watermark); least recently used
	// evicted past it and counted. Default DefaultMaxClients.
	MaxClients int
	// T1: after FaultEnded, a correct replica must execute a batch within
	// T1; T2: every request pending at FaultEnded must be executed by a
	// correct replica and accepted by its client within T2. Zero
	// disables the deadline (the times are still measured).
	T1, T2 time.Duration
}

func (o Options) withDefaults() Options {
	if o.N <= 0 {
		panic(fmt.Sprintf("pbftcheck: Options.N = %d", o.N))
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.MaxSeqs <= 0 {
		o.MaxSeqs = 8*int(o.Window) + 1024
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	return o
}

// Execution is one batch executed by one replica: the core's Committed
// plus the replica that executed it. Results[i] is Requests[i]'s result.
// The checker keeps the slices (without copying) while it holds the
// record: the caller must not modify them afterwards.
type Execution struct {
	Replica  protocol.ReplicaID
	View     protocol.View
	Seq      protocol.Seq
	Digest   protocol.Digest
	Requests []protocol.Request
	Results  [][]byte
}

// Violation is one broken invariant with its evidence. Which fields are
// set depends on Invariant (see each check in doc.go).
type Violation struct {
	Invariant string
	// At is the time of the call that found it (zero for calls without a
	// time: Checkpoint).
	At time.Time
	// Replica made the report that broke the invariant; Other made the
	// earlier report it contradicts (agreement, checkpoint, results).
	Replica, Other protocol.ReplicaID
	// Seq: agreement, checkpoint (the checkpoint's seq), integrity and
	// validity (the batch's seq).
	Seq protocol.Seq
	// Digest is Replica's batch or state digest, OtherDigest Other's.
	Digest, OtherDigest protocol.Digest
	// Batch, OtherBatch: agreement, the two batches.
	Batch, OtherBatch []protocol.Request
	// Client, Timestamp: the request (integrity, validity, result
	// agreement).
	Client, Timestamp uint64
	// Result is the reply accepted or Replica's result, OtherResult the
	// recorded one it differs from.
	Result, OtherResult []byte
	// FaultEnded: liveness, the end of the fault window whose deadline
	// was missed; Pending: the requests still unfinished at the drain
	// deadline (0 for a missed commit).
	FaultEnded time.Time
	Pending    int
	Detail     string
}

func (v Violation) String() string { return v.Invariant + ": " + v.Detail }

// OpDigest is the digest Issued takes of a request's operation.
func OpDigest(op []byte) protocol.Digest { return sha256.Sum256(op) }

// Stats is what the checker holds and has dropped, for metrics.
type Stats struct {
	// Held now.
	Seqs, Checkpoints, Requests, Pending, Clients int
	// Executions checked; Ignored: reports of Byzantine (or out of
	// range) replicas.
	Executions, Ignored uint64
	// Late: executions whose seq was already dropped (below the window,
	// or every replica had passed it), unchecked for agreement;
	// LateCheckpoints likewise.
	Late, LateCheckpoints uint64
	// Unverified: executions or accepted replies of requests already
	// forgotten (unchecked for validity).
	Unverified uint64
	// Forgotten: request records dropped normally (done, or their seq
	// dropped after the reply was accepted).
	Forgotten uint64
	// Evicted by the caps: detection lost, count them.
	EvictedSeqs, EvictedCheckpoints, EvictedRequests, EvictedClients uint64
	// Violations by invariant.
	Violations map[string]uint64
}

type reqKey struct{ client, ts uint64 }

// seqRec is the first correct report at one seq.
type seqRec struct {
	replica protocol.ReplicaID
	digest  protocol.Digest
	batch   []protocol.Request
	reqs    []reqKey // requests first executed (by a correct replica) here
}

type cpRec struct {
	replica protocol.ReplicaID
	digest  protocol.Digest
}

type reqRec struct {
	key      reqKey
	op       protocol.Digest
	executed []bool // by replica, while correct
	// First correct execution.
	execCorrect bool
	seq         protocol.Seq
	inSeq       bool // listed in seqs[seq].reqs
	result      []byte
	resultBy    protocol.ReplicaID
	// The client's accepted reply.
	accepted    bool
	acceptedRes []byte
	finished    bool   // execCorrect && accepted
	episode     uint64 // the liveness episode it was pending at the start of
	elem        *list.Element
}

type lastExec struct {
	ts  uint64
	seq protocol.Seq
	ok  bool
}

type clientRec struct {
	id           uint64
	last         []lastExec // by replica
	forgottenMax uint64     // highest timestamp whose record was forgotten
	elem         *list.Element
}

// Checker checks a PBFT cluster's execution as it streams in. It is not
// safe for concurrent use: call it from one event loop.
type Checker struct {
	o        Options
	byz      []bool
	passed   []protocol.Seq // highest seq executed (or restored to) while correct
	cpPassed []protocol.Seq // highest checkpoint reported while correct
	stable   protocol.Seq

	seqs     map[protocol.Seq]*seqRec
	seqHeap  seqHeap
	seqFloor protocol.Seq // every seq <= seqFloor is dropped
	cps      map[protocol.Seq]*cpRec
	cpHeap   seqHeap
	cpFloor  protocol.Seq

	reqs  map[reqKey]*reqRec
	loose list.List // *reqRec not tied to a held seq, oldest first

	clients          map[uint64]*clientRec
	clientLRU        list.List // *clientRec, least recently used first
	evictedForgotten uint64    // max forgottenMax of evicted clients

	ep       *episode
	last     Recovery
	episodes uint64

	now time.Time // the latest time passed in
	st  Stats
	out []Violation
}

// New returns a checker with every replica correct.
func New(o Options) *Checker {
	o = o.withDefaults()
	c := &Checker{
		o:        o,
		byz:      make([]bool, o.N),
		passed:   make([]protocol.Seq, o.N),
		cpPassed: make([]protocol.Seq, o.N),
		seqs:     make(map[protocol.Seq]*seqRec),
		cps:      make(map[protocol.Seq]*cpRec),
		reqs:     make(map[reqKey]*reqRec),
		clients:  make(map[uint64]*clientRec),
	}
	c.st.Violations = make(map[string]uint64, len(Invariants))
	for _, inv := range Invariants {
		c.st.Violations[inv] = 0
	}
	return c
}

// Options returns the options in effect (defaults filled in).
func (c *Checker) Options() Options { return c.o }

// SetByzantine marks replica r Byzantine (its reports are ignored from now
// on) or correct again. A Byzantine replica's progress stops counting, so
// it holds records back until they fall below the window: when it turns
// correct again, its reports are still checked.
func (c *Checker) SetByzantine(r protocol.ReplicaID, byzantine bool) {
	if int(r) < c.o.N {
		c.byz[r] = byzantine
	}
}

// Byzantine reports whether r is marked Byzantine.
func (c *Checker) Byzantine(r protocol.ReplicaID) bool { return int(r) < c.o.N && c.byz[r] }

func (c *Checker) correct(r protocol.ReplicaID) bool { return int(r) < c.o.N && !c.byz[r] }

// Stable records that the cluster's stable checkpoint reached seq: records
// more than Window below it are dropped.
func (c *Checker) Stable(seq protocol.Seq) {
	if seq > c.stable {
		c.stable = seq
		c.gc()
	}
}

// Restored records that replica r's state was replaced by the checkpoint
// at seq (state transfer, or a restart from its own checkpoint): it will
// execute from seq+1 on. A restart that re-executes seqs it had executed
// is then not a duplicate execution; re-executions at seqs already
// dropped are counted Late, not checked for agreement.
func (c *Checker) Restored(r protocol.ReplicaID, seq protocol.Seq) {
	if int(r) >= c.o.N {
		return
	}
	c.passed[r] = seq
	if seq > c.cpPassed[r] {
		c.cpPassed[r] = seq
	}
	for _, cl := range c.clients {
		if l := &cl.last[r]; l.ok && l.seq > seq {
			*l = lastExec{}
		}
	}
	c.gc()
}

// Stats returns what the checker holds and has dropped.
func (c *Checker) Stats() Stats {
	s := c.st
	s.Seqs, s.Checkpoints, s.Requests, s.Pending, s.Clients = len(c.seqs), len(c.cps), len(c.reqs), c.loose.Len(), len(c.clients)
	s.Violations = maps.Clone(c.st.Violations)
	return s
}

func (c *Checker) violate(v Violation) {
	c.st.Violations[v.Invariant]++
	c.out = append(c.out, v)
}

func (c *Checker) flush() []Violation {
	if len(c.out) == 0 {
		return nil
	}
	vs := c.out
	c.out = nil
	return vs
}

// Executed checks and records one batch executed by one replica at time
// now. Agreement is checked against the first correct report at e.Seq,
// then each request for integrity and validity, in batch order.
func (c *Checker) Executed(now time.Time, e Execution) []Violation {
	c.tick(now)
	r := e.Replica
	if !c.correct(r) {
		c.st.Ignored++
		return c.flush()
	}
	c.st.Executions++
	if c.ep != nil && !c.ep.committed {
		c.ep.committed, c.ep.commitAt = true, now
	}
	rec := c.agree(now, e)
	for i, q := range e.Requests {
		var res []byte
		if i < len(e.Results) {
			res = e.Results[i]
		}
		c.execRequest(now, r, e.Seq, rec, q, res)
	}
	if e.Seq > c.passed[r] {
		c.passed[r] = e.Seq
	}
	c.closeEpisodeIfDone()
	c.gc()
	return c.flush()
}

// agree checks e against the first correct report at its seq, recording
// it if it is the first. It returns the seq's record (nil if dropped).
func (c *Checker) agree(now time.Time, e Execution) *seqRec {
	if e.Seq <= c.seqFloor {
		c.st.Late++
		return nil
	}
	rec := c.seqs[e.Seq]
	if rec == nil {
		rec = &seqRec{replica: e.Replica, digest: e.Digest, batch: e.Requests}
		c.seqs[e.Seq] = rec
		heap.Push(&c.seqHeap, e.Seq)
		return rec
	}
	if rec.digest != e.Digest {
		c.violate(Violation{
			Invariant: InvAgreement, At: now, Replica: e.Replica, Other: rec.replica, Seq: e.Seq,
			Digest: e.Digest, OtherDigest: rec.digest, Batch: e.Requests, OtherBatch: rec.batch,
			Detail: fmt.Sprintf("seq %d: replica %d executed batch %x (%d requests), replica %d executed %x (%d requests)",
				e.Seq, e.Replica, e.Digest[:4], len(e.Requests), rec.replica, rec.digest[:4], len(rec.batch)),
		})
	}
	return rec
}

func (c *Checker) execRequest(now time.Time, r protocol.ReplicaID, seq protocol.Seq, rec *seqRec, q protocol.Request, res []byte) {
	cl := c.client(q.Client)
	// Integrity.
	if l := &cl.last[r]; l.ok && q.Timestamp <= l.ts {
		what := "again"
		if q.Timestamp < l.ts {
			what = fmt.Sprintf("after timestamp %d (seq %d)", l.ts, l.seq)
		}
		c.violate(Violation{
			Invariant: InvIntegrity, At: now, Replica: r, Seq: seq, Client: q.Client, Timestamp: q.Timestamp,
			Detail: fmt.Sprintf("replica %d executed client %d timestamp %d %s at seq %d", r, q.Client, q.Timestamp, what, seq),
		})
	} else {
		*l = lastExec{ts: q.Timestamp, seq: seq, ok: true}
	}
	// Validity.
	k := reqKey{q.Client, q.Timestamp}
	e := c.reqs[k]
	if e == nil {
		if q.Timestamp <= max(cl.forgottenMax, c.evictedForgotten) {
			c.st.Unverified++
			return
		}
		c.violate(Violation{
			Invariant: InvValidity, At: now, Replica: r, Seq: seq, Client: q.Client, Timestamp: q.Timestamp, Result: res,
			Detail: fmt.Sprintf("replica %d executed client %d timestamp %d at seq %d, never issued", r, q.Client, q.Timestamp, seq),
		})
		return
	}
	if d := OpDigest(q.Op); d != e.op {
		c.violate(Violation{
			Invariant: InvValidity, At: now, Replica: r, Seq: seq, Client: q.Client, Timestamp: q.Timestamp,
			Digest: d, OtherDigest: e.op,
			Detail: fmt.Sprintf("replica %d executed client %d timestamp %d at seq %d with op %x, issued %x", r, q.Client, q.Timestamp, seq, d[:4], e.op[:4]),
		})
	}
	e.executed[r] = true
	if !e.execCorrect {
		e.execCorrect, e.seq, e.result, e.resultBy = true, seq, res, r
		if rec != nil {
			rec.reqs = append(rec.reqs, k)
			e.inSeq = true
			c.unloose(e)
		}
		if e.accepted {
			c.checkAccepted(now, e)
			c.finish(now, e)
		}
	} else if !bytes.Equal(res, e.result) {
		c.violate(Violation{
			Invariant: InvAgreement, At: now, Replica: r, Other: e.resultBy, Seq: seq, Client: q.Client, Timestamp: q.Timestamp,
			Result: res, OtherResult: e.result,
			Detail: fmt.Sprintf("client %d timestamp %d: replica %d's result %q differs from replica %d's %q", q.Client, q.Timestamp, r, trunc(res), e.resultBy, trunc(e.result)),
		})
	}
	c.maybeForget(e)
}

func (c *Checker) checkAccepted(now time.Time, e *reqRec) {
	if bytes.Equal(e.acceptedRes, e.result) {
		return
	}
	c.violate(Violation{
		Invariant: InvValidity, At: now, Replica: e.resultBy, Seq: e.seq, Client: e.key.client, Timestamp: e.key.ts,
		Result: e.acceptedRes, OtherResult: e.result,
		Detail: fmt.Sprintf("client %d timestamp %d: accepted reply %q, replica %d executed it with result %q", e.key.client, e.key.ts, trunc(e.acceptedRes), e.resultBy, trunc(e.result)),
	})
}

func trunc(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}

// Issued records that client sent request (client, ts) with an operation
// of digest op (OpDigest). Retransmissions are harmless.
func (c *Checker) Issued(now time.Time, client, ts uint64, op protocol.Digest) []Violation {
	c.tick(now)
	if c.ep != nil && !c.ep.committed && !c.ep.armed {
		c.ep.armed, c.ep.commitBy = true, now.Add(c.o.T1)
	}
	k := reqKey{client, ts}
	if c.reqs[k] != nil {
		return c.flush()
	}
	cl := c.client(client)
	if ts <= max(cl.forgottenMax, c.evictedForgotten) {
		return c.flush() // a retransmission of a request already forgotten
	}
	e := &reqRec{key: k, op: op, executed: make([]bool, c.o.N)}
	c.reqs[k] = e
	c.pushLoose(e)
	return c.flush()
}

// Accepted records that client accepted result as the reply to (client,
// ts): it must equal the result the first correct replica to execute it
// got (compared now, or when that execution is reported).
func (c *Checker) Accepted(now time.Time, client, ts uint64, result []byte) []Violation {
	c.tick(now)
	k := reqKey{client, ts}
	e := c.reqs[k]
	if e == nil {
		cl := c.clients[client]
		if (cl != nil && ts <= cl.forgottenMax) || ts <= c.evictedForgotten {
			c.st.Unverified++
		} else {
			c.violate(Violation{
				Invariant: InvValidity, At: now, Client: client, Timestamp: ts, Result: result,
				Detail: fmt.Sprintf("client %d accepted a reply %q to timestamp %d, never issued", client, trunc(result), ts),
			})
		}
		return c.flush()
	}
	if !e.accepted {
		e.accepted, e.acceptedRes = true, result
		if e.execCorrect {
			c.checkAccepted(now, e)
			c.finish(now, e)
		}
		c.maybeForget(e)
	}
	c.closeEpisodeIfDone()
	return c.flush()
}

// Checkpoint checks replica r's state digest at checkpoint seq against the
// first correct replica's.
func (c *Checker) Checkpoint(r protocol.ReplicaID, seq protocol.Seq, digest protocol.Digest) []Violation {
	if !c.correct(r) {
		c.st.Ignored++
		return nil
	}
	if seq <= c.cpFloor {
		c.st.LateCheckpoints++
	} else if rec := c.cps[seq]; rec == nil {
		c.cps[seq] = &cpRec{replica: r, digest: digest}
		heap.Push(&c.cpHeap, seq)
	} else if rec.digest != digest {
		c.violate(Violation{
			Invariant: InvCheckpoint, Replica: r, Other: rec.replica, Seq: seq, Digest: digest, OtherDigest: rec.digest,
			Detail: fmt.Sprintf("checkpoint %d: replica %d's state digest %x, replica %d's %x", seq, r, digest[:4], rec.replica, rec.digest[:4]),
		})
	}
	if seq > c.cpPassed[r] {
		c.cpPassed[r] = seq
	}
	c.gc()
	return c.flush()
}

// client returns client id's record, creating it, and marks it used.
func (c *Checker) client(id uint64) *clientRec {
	if cl := c.clients[id]; cl != nil {
		c.clientLRU.MoveToBack(cl.elem)
		return cl
	}
	cl := &clientRec{id: id, last: make([]lastExec, c.o.N)}
	cl.elem = c.clientLRU.PushBack(cl)
	c.clients[id] = cl
	for len(c.clients) > c.o.MaxClients {
		old := c.clientLRU.Remove(c.clientLRU.Front()).(*clientRec)
		delete(c.clients, old.id)
		c.evictedForgotten = max(c.evictedForgotten, old.forgottenMax)
		c.st.EvictedClients++
	}
	return cl
}

func (c *Checker) pushLoose(e *reqRec) {
	e.elem = c.loose.PushBack(e)
	for c.loose.Len() > c.o.MaxPending {
		old := c.loose.Front().Value.(*reqRec)
		c.st.EvictedRequests++
		c.forget(old)
	}
}

func (c *Checker) unloose(e *reqRec) {
	if e.elem != nil {
		c.loose.Remove(e.elem)
		e.elem = nil
	}
}

// maybeForget drops e once a correct replica executed it and its client
// accepted the reply, and every correct replica executed it or its seq was
// dropped.
func (c *Checker) maybeForget(e *reqRec) {
	if !e.accepted || !e.execCorrect {
		return
	}
	if e.inSeq {
		for r, ok := range e.executed {
			if !ok && !c.byz[r] {
				return
			}
		}
	}
	c.st.Forgotten++
	c.forget(e)
}

func (c *Checker) forget(e *reqRec) {
	c.unloose(e)
	delete(c.reqs, e.key)
	if cl := c.clients[e.key.client]; cl != nil {
		cl.forgottenMax = max(cl.forgottenMax, e.key.ts)
	} else {
		c.evictedForgotten = max(c.evictedForgotten, e.key.ts)
	}
	if !e.finished && c.ep != nil && e.episode == c.ep.id {
		c.ep.lost++
		c.ep.outstanding--
		if c.ep.outstanding == 0 {
			c.ep.drainAt = c.now
		}
	}
}

// gc drops the records at seqs no correct report can still be checked
// against: Window below the stable checkpoint, or passed by every replica
// (a Byzantine one's progress is frozen while it is marked), and the
// lowest past MaxSeqs.
func (c *Checker) gc() {
	low := protocol.Seq(0)
	if c.stable > c.o.Window {
		low = c.stable - c.o.Window
	}
	x := max(low, minSeq(c.passed))
	for len(c.seqHeap) > 0 && (c.seqHeap[0] <= x || len(c.seqHeap) > c.o.MaxSeqs) {
		s := heap.Pop(&c.seqHeap).(protocol.Seq)
		if s > x {
			c.st.EvictedSeqs++
		}
		c.dropSeq(s)
		c.seqFloor = max(c.seqFloor, s)
	}
	c.seqFloor = max(c.seqFloor, x)

	x = max(low, minSeq(c.cpPassed))
	for len(c.cpHeap) > 0 && (c.cpHeap[0] <= x || len(c.cpHeap) > c.o.MaxSeqs) {
		s := heap.Pop(&c.cpHeap).(protocol.Seq)
		if s > x {
			c.st.EvictedCheckpoints++
		}
		delete(c.cps, s)
		c.cpFloor = max(c.cpFloor, s)
	}
	c.cpFloor = max(c.cpFloor, x)
	c.closeEpisodeIfDone()
}

func (c *Checker) dropSeq(s protocol.Seq) {
	rec := c.seqs[s]
	delete(c.seqs, s)
	for _, k := range rec.reqs {
		e := c.reqs[k]
		if e == nil || !e.inSeq || e.seq != s {
			continue
		}
		e.inSeq = false
		if e.accepted {
			c.st.Forgotten++
			c.forget(e)
		} else {
			c.pushLoose(e) // wait for the client's accept, bounded by MaxPending
		}
	}
}

func minSeq(s []protocol.Seq) protocol.Seq {
	m := s[0]
	for _, v := range s[1:] {
		m = min(m, v)
	}
	return m
}

type seqHeap []protocol.Seq

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(protocol.Seq)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
