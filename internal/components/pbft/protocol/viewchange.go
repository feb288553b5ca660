package protocol

import (
	"slices"
)

// tickViewChange runs the view-change timer: a backup waiting for a
// pending request, or a replica waiting for a new view once 2f+1 replicas
// joined it (so an isolated replica does not race through views), moves
// to the next view when it expires. The timeout doubles per consecutive
// view change.
func (r *Replica) tickViewChange() {
	if r.inVC {
		// Messages get lost: say it again now and then.
		if r.resend++; r.resend >= r.cfg.ViewChangeTimeout {
			r.resend = 0
			r.broadcast(r.vcs[r.id])
		}
		// Count view changes for this view or later: a correct replica
		// that already timed out to v+1 still stands for v having failed,
		// or the others' timers stop and the view stays stuck (found by
		// the sim: a silent replica, seed 1).
		if r.vcCountAtLeast(r.view) < 2*r.f+1 {
			return
		}
	} else if r.isPrimary() || len(r.pending) == 0 {
		r.timer = 0
		return
	}
	r.timer++
	if r.timer >= r.cfg.ViewChangeTimeout<<min(r.vcAttempts, 16) {
		r.vcAttempts++
		r.startViewChange(r.view + 1)
	}
}

func (r *Replica) vcCountAtLeast(v View) int {
	count := 0
	for _, m := range r.vcs {
		if m.View >= v {
			count++
		}
	}
	return count
}

// startViewChange moves to view v: no more normal-case messages for lower
// views; tell everyone what we pre-prepared and prepared above the stable
// checkpoint.
func (r *Replica) startViewChange(v View) {
	r.view, r.inVC, r.timer, r.batchWait, r.resend = v, true, 0, 0, 0
	vc := &ViewChange{Stable: r.stable, StableDigest: r.stableDigest, Proof: r.proof}
	seqs := make([]Seq, 0, len(r.log))
	for s := range r.log {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		e := r.log[s]
		if len(e.q) == 0 && e.pDigest == (Digest{}) {
			continue
		}
		p := Prepared{Seq: s, PView: e.pView, PDigest: e.pDigest, Q: slices.Clone(e.q)}
		ds := make([]Digest, 0, len(e.batches))
		for d := range e.batches {
			ds = append(ds, d)
		}
		slices.SortFunc(ds, func(a, b Digest) int { return slices.Compare(a[:], b[:]) })
		for _, d := range ds {
			p.Batches = append(p.Batches, BatchOf{Digest: d, Batch: e.batches[d]})
		}
		vc.Prepared = append(vc.Prepared, p)
	}
	m := Message{Kind: KindViewChange, From: r.id, View: v, ViewChange: vc}
	r.vcs[r.id] = m
	r.broadcast(m)
	r.tryNewView()
}

func (r *Replica) onViewChange(m Message) error {
	if m.ViewChange == nil {
		return reject(ReasonMalformed, m, "no view change")
	}
	if m.View == r.view && !r.inVC && r.newView != nil {
		r.send(m.From, *r.newView) // it missed the new view
	}
	if old, ok := r.vcs[m.From]; ok && old.View >= m.View {
		return reject(ReasonStale, m, "")
	}
	r.vcs[m.From] = m
	if m.View < r.view {
		return reject(ReasonStale, m, "")
	}
	// Join: f+1 replicas are in later views, so a correct one is; go to
	// the highest view f+1 of them reached.
	var later []View
	for id, vc := range r.vcs {
		if id != r.id && vc.View > r.view {
			later = append(later, vc.View)
		}
	}
	if len(later) >= r.f+1 {
		slices.Sort(later)
		r.startViewChange(later[len(later)-1-r.f])
		return nil
	}
	r.tryNewView()
	return nil
}

// tryNewView, as the new primary, sends the new view once the view
// changes received decide it and it holds every chosen batch.
func (r *Replica) tryNewView() {
	if !r.inVC || !r.isPrimary() {
		return
	}
	var vcs []Message
	for _, m := range r.vcs {
		if m.View == r.view {
			vcs = append(vcs, m)
		}
	}
	if len(vcs) < 2*r.f+1 {
		return
	}
	slices.SortFunc(vcs, func(a, b Message) int { return cmpU64(a.From, b.From) })
	plan, ok := NewViewPlan(r.n, r.f, vcs)
	if !ok {
		return
	}
	pps := make([]Message, 0, len(plan.Batches))
	for _, b := range plan.Batches {
		batch, ok := r.findBatch(b, vcs)
		if !ok {
			return
		}
		pps = append(pps, Message{Kind: KindPrePrepare, From: r.id, View: r.view, Seq: b.Seq, Digest: b.Digest, Batch: batch})
	}
	nv := Message{Kind: KindNewView, From: r.id, View: r.view, NewView: &NewView{ViewChanges: vcs, PrePrepares: pps}}
	r.broadcast(nv)
	r.installNewView(nv, plan)
}

func (r *Replica) findBatch(b PlanBatch, vcs []Message) ([]Request, bool) {
	if b.Digest == nullDigest {
		return nil, true
	}
	if e := r.log[b.Seq]; e != nil {
		if batch, ok := e.batches[b.Digest]; ok {
			return batch, true
		}
	}
	for _, m := range vcs {
		for _, p := range m.ViewChange.Prepared {
			for _, bo := range p.Batches {
				if p.Seq == b.Seq && bo.Digest == b.Digest && BatchDigest(bo.Batch) == b.Digest {
					return bo.Batch, true
				}
			}
		}
	}
	return nil, false
}

// onNewView checks a new view by recomputing its plan from the view
// changes it carries, then starts it.
func (r *Replica) onNewView(m Message) error {
	if m.NewView == nil || m.View == 0 {
		return reject(ReasonMalformed, m, "no new view")
	}
	if m.From != r.primaryOf(m.View) {
		return reject(ReasonNotPrimary, m, "")
	}
	if m.View < r.view || m.View == r.view && !r.inVC {
		return reject(ReasonStale, m, "")
	}
	nv := m.NewView
	if len(nv.ViewChanges) < 2*r.f+1 || nv.ViewChanges[0].View != m.View {
		return reject(ReasonBadNewView, m, "too few view changes")
	}
	plan, ok := NewViewPlan(r.n, r.f, nv.ViewChanges)
	if !ok {
		return reject(ReasonBadNewView, m, "view changes decide nothing")
	}
	if len(nv.PrePrepares) != len(plan.Batches) {
		return reject(ReasonBadNewView, m, "pre-prepares do not match the plan")
	}
	for i, pp := range nv.PrePrepares {
		b := plan.Batches[i]
		if pp.Kind != KindPrePrepare || pp.From != m.From || pp.View != m.View || pp.Seq != b.Seq ||
			pp.Digest != b.Digest || BatchDigest(pp.Batch) != b.Digest {
			return reject(ReasonBadNewView, m, "pre-prepares do not match the plan")
		}
	}
	r.installNewView(m, plan)
	return nil
}

// installNewView starts view m.View with the plan's pre-prepares.
func (r *Replica) installNewView(m Message, plan Plan) {
	r.view, r.inVC, r.vcAttempts, r.timer, r.batchWait = m.View, false, 0, 0, 0
	r.newView = &m
	if plan.Checkpoint > r.lastExec {
		r.nvTarget = ckRef{plan.Checkpoint, plan.CheckpointDigest}
	}
	// What the old views pre-prepared and did not commit is void; P and Q
	// stay for later view changes. A committed batch is safe to execute
	// (the plan reassigns it, or the checkpoint covers it).
	for _, e := range r.log {
		if !e.committed {
			e.hasPP, e.prepared = false, false
		}
	}
	top := max(plan.Checkpoint, r.stable)
	for _, pp := range m.NewView.PrePrepares {
		top = max(top, pp.Seq)
		if r.inWindow(pp.Seq) {
			_ = r.acceptPrePrepare(pp)
		}
	}
	if r.isPrimary() {
		r.lastAssigned = top
		for c, p := range r.pending {
			p.assigned = false
			r.pending[c] = p
		}
		for _, pp := range m.NewView.PrePrepares {
			for _, req := range pp.Batch {
				if p, ok := r.pending[req.Client]; ok && p.req.Timestamp == req.Timestamp {
					p.assigned = true
					r.pending[req.Client] = p
				}
			}
		}
	}
	// Pre-prepares and votes that arrived before the new view.
	var early []Seq
	for s, pp := range r.future {
		if pp.View == r.view {
			early = append(early, s)
		} else if pp.View < r.view {
			delete(r.future, s)
		}
	}
	slices.Sort(early)
	for _, s := range early {
		pp := r.future[s]
		delete(r.future, s)
		_ = r.acceptPrePrepare(pp)
	}
	seqs := make([]Seq, 0, len(r.log))
	for s := range r.log {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		if e := r.log[s]; e != nil {
			r.checkEntry(s, e)
		}
	}
	r.executeReady()
	r.maybeBatch(false)
}
