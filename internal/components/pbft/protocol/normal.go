package protocol

import "slices"

// entry is the message log for one sequence number.
type entry struct {
	// The pre-prepare accepted in view (when hasPP).
	hasPP  bool
	view   View
	digest Digest
	batch  []Request
	// Each replica's latest prepare and commit (view, digest): kept for a
	// view not started yet too, since the network may deliver them before
	// the pre-prepare or the new view.
	prepares, commits map[ReplicaID]vote
	prepared          bool
	committed         bool
	// For view changes, kept across views: P, prepared in pView with
	// pDigest (zero when never prepared); Q, the digests pre-prepared with
	// the highest view each; the batches of both.
	pView   View
	pDigest Digest
	q       []PrePrepared
	batches map[Digest][]Request
}

type vote struct {
	view   View
	digest Digest
}

// maxQ bounds Q: a replica keeps the digests of its maxQ highest views.
const maxQ = 4

func (r *Replica) entry(s Seq) *entry {
	e := r.log[s]
	if e == nil {
		e = &entry{prepares: map[ReplicaID]vote{}, commits: map[ReplicaID]vote{}, batches: map[Digest][]Request{}}
		r.log[s] = e
	}
	return e
}

func (e *entry) addQ(v View, d Digest, batch []Request) {
	e.batches[d] = batch
	for i := range e.q {
		if e.q[i].Digest == d {
			e.q[i].View = max(e.q[i].View, v)
			return
		}
	}
	e.q = append(e.q, PrePrepared{View: v, Digest: d})
	if len(e.q) > maxQ {
		low := 0
		for i := range e.q {
			if e.q[i].View < e.q[low].View {
				low = i
			}
		}
		if gone := e.q[low].Digest; gone != e.pDigest {
			delete(e.batches, gone)
		}
		e.q = append(e.q[:low], e.q[low+1:]...)
	}
}

func (r *Replica) onPrePrepare(m Message) error {
	if m.From != r.primaryOf(m.View) {
		return reject(ReasonNotPrimary, m, "")
	}
	if m.View < r.view {
		return reject(ReasonWrongView, m, "")
	}
	if err := r.checkWindow(m); err != nil {
		return err
	}
	if BatchDigest(m.Batch) != m.Digest {
		return reject(ReasonBadDigest, m, "")
	}
	r.noteView(m.From, m.View)
	if m.View > r.view || r.inVC {
		// Before its new view: keep the highest-view one per seq.
		if old, ok := r.future[m.Seq]; !ok || old.View < m.View {
			r.future[m.Seq] = m
		}
		return nil
	}
	return r.acceptPrePrepare(m)
}

// acceptPrePrepare logs a pre-prepare of the current view (own as primary,
// a backup's, or one of a new view) and prepares it.
func (r *Replica) acceptPrePrepare(m Message) error {
	e := r.entry(m.Seq)
	if e.hasPP && e.view == m.View {
		if e.digest != m.Digest {
			return reject(ReasonEquivocation, m, "")
		}
		if m.From != r.id {
			r.answerRetransmit(m.From, m.Seq, e) // the primary says it again: it is missing votes
		}
		return nil
	}
	if !(e.committed && e.digest == m.Digest) {
		e.committed = false
	}
	e.hasPP, e.view, e.digest, e.batch, e.prepared = true, m.View, m.Digest, m.Batch, false
	e.addQ(m.View, m.Digest, m.Batch)
	if r.primaryOf(m.View) != r.id {
		p := Message{Kind: KindPrepare, View: m.View, Seq: m.Seq, Digest: m.Digest}
		e.prepares[r.id] = vote{m.View, m.Digest}
		r.broadcast(p)
	}
	r.checkEntry(m.Seq, e)
	return nil
}

func (r *Replica) onVote(m Message) error {
	if m.Kind == KindPrepare && m.From == r.primaryOf(m.View) {
		return reject(ReasonMalformed, m, "prepare from the primary")
	}
	if m.View < r.view {
		return reject(ReasonWrongView, m, "")
	}
	if err := r.checkWindow(m); err != nil {
		return err
	}
	r.noteView(m.From, m.View)
	e := r.entry(m.Seq)
	votes := e.prepares
	if m.Kind == KindCommit {
		votes = e.commits
	}
	old, ok := votes[m.From]
	if ok && old.view > m.View {
		return reject(ReasonStale, m, "")
	}
	votes[m.From] = vote{m.View, m.Digest}
	r.checkEntry(m.Seq, e)
	if ok && old == (vote{m.View, m.Digest}) && e.hasPP && e.view == m.View && e.digest == m.Digest {
		r.answerRetransmit(m.From, m.Seq, e) // said again: the sender is missing votes
	}
	return nil
}

// answerRetransmit sends a replica that repeats its vote for seq our own
// prepare and commit for it, in case they were what it lost. Answers to a
// peer are budgeted, L per retransmitTicks: an answer is itself a repeat
// at its receiver, and without a budget two replicas would answer each
// other's answers forever.
func (r *Replica) answerRetransmit(to ReplicaID, s Seq, e *entry) {
	a := r.answered[to]
	if r.ticks-a.at >= retransmitTicks {
		a = answerMark{at: r.ticks}
	}
	if a.count >= int(r.l) {
		return
	}
	a.count++
	r.answered[to] = a
	if v, ok := e.prepares[r.id]; ok && v.view == e.view && v.digest == e.digest {
		r.send(to, Message{Kind: KindPrepare, From: r.id, View: e.view, Seq: s, Digest: e.digest})
	}
	if v, ok := e.commits[r.id]; ok && v.view == e.view && v.digest == e.digest {
		r.send(to, Message{Kind: KindCommit, From: r.id, View: e.view, Seq: s, Digest: e.digest})
	}
}

// retransmitTicks: a replica with batches of its view not yet executed,
// and no execution for this long, says its part of them again. Messages
// get lost; without this a lost prepare or commit waits for a view change.
const retransmitTicks = 10

// answerMark is a peer's answer budget: answers sent since tick at.
type answerMark struct {
	at    uint64
	count int
}

func (r *Replica) tickRetransmit() {
	if r.inVC || r.lastExec != r.stuckAt {
		r.stuckAt, r.stuck = r.lastExec, 0
		return
	}
	var seqs []Seq
	for s, e := range r.log {
		if s > r.lastExec && e.hasPP && e.view == r.view {
			seqs = append(seqs, s)
		}
	}
	if len(seqs) == 0 {
		r.stuck = 0
		return
	}
	if r.stuck++; r.stuck < retransmitTicks {
		return
	}
	r.stuck = 0
	slices.Sort(seqs)
	for _, s := range seqs {
		e := r.log[s]
		if r.primaryOf(e.view) == r.id {
			r.broadcast(Message{Kind: KindPrePrepare, View: e.view, Seq: s, Digest: e.digest, Batch: e.batch})
		} else if v, ok := e.prepares[r.id]; ok && v.view == e.view {
			r.broadcast(Message{Kind: KindPrepare, View: e.view, Seq: s, Digest: e.digest})
		}
		if e.prepared {
			r.broadcast(Message{Kind: KindCommit, View: e.view, Seq: s, Digest: e.digest})
		}
	}
}

// checkEntry moves an entry of the current view on: prepared (the
// pre-prepare and quorumP matching prepares from backups) sends a commit,
// committed (prepared and 2f+1 matching commits) executes.
func (r *Replica) checkEntry(s Seq, e *entry) {
	if !e.hasPP || e.view != r.view || r.inVC {
		return
	}
	want := vote{e.view, e.digest}
	if !e.prepared {
		prim, count := r.primaryOf(e.view), 0
		for from, v := range e.prepares {
			if from != prim && v == want {
				count++
			}
		}
		if count < r.quorumP {
			return
		}
		e.prepared, e.pView, e.pDigest = true, e.view, e.digest
		e.commits[r.id] = want
		r.broadcast(Message{Kind: KindCommit, View: e.view, Seq: s, Digest: e.digest})
	}
	if !e.committed {
		count := 0
		for _, v := range e.commits {
			if v == want {
				count++
			}
		}
		if count < r.quorumC {
			return
		}
		e.committed = true
	}
	r.executeReady()
}

func (r *Replica) executeReady() {
	for {
		e := r.log[r.lastExec+1]
		if e == nil || !e.committed || !e.hasPP {
			return
		}
		r.apply(e.view, r.lastExec+1, e.digest, e.batch)
	}
}

// apply executes the batch at lastExec+1, at most once per request.
func (r *Replica) apply(v View, s Seq, d Digest, batch []Request) {
	results := make([][]byte, len(batch))
	executed := make([]bool, len(batch))
	progress := false
	for i, req := range batch {
		if c, ok := r.replies[req.Client]; ok && req.Timestamp <= c.ts {
			if req.Timestamp == c.ts {
				results[i] = c.result
			}
			continue
		}
		c := cachedReply{ts: req.Timestamp, result: r.cfg.App.Execute(req.Op)}
		results[i], executed[i] = c.result, true
		r.replies[req.Client] = c
		r.reply(req.Client, c)
		if p, ok := r.pending[req.Client]; ok && p.req.Timestamp <= req.Timestamp {
			delete(r.pending, req.Client)
			progress = true
		}
	}
	r.lastExec = s
	r.lastAssigned = max(r.lastAssigned, s)
	if progress && !r.inVC {
		r.timer = 0 // waiting for another request now, if any
	}
	r.ready.Committed = append(r.ready.Committed, Committed{View: v, Seq: s, Digest: d, Batch: batch, Results: results,
		Executed: executed})
	if s%r.k == 0 {
		r.takeCheckpoint(s)
	}
}

func (r *Replica) checkWindow(m Message) error {
	switch {
	case m.Seq <= r.stable:
		return reject(ReasonStale, m, "at or below the stable checkpoint")
	case m.Seq > r.stable+r.l:
		return reject(ReasonOutsideWatermarks, m, "")
	}
	return nil
}

func (r *Replica) noteView(from ReplicaID, v View) {
	if v > r.peerView[from] {
		r.peerView[from] = v
	}
}
