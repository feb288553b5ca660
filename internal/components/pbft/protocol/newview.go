package protocol

import (
	"slices"
)

// Plan is the new-view decision: the checkpoint the new view starts from
// and the batch digest for each sequence number after it, up to the
// highest one chosen from a prepared claim (gaps are null batches).
type Plan struct {
	Checkpoint       Seq
	CheckpointDigest Digest
	Batches          []PlanBatch
}

// PlanBatch is one sequence number's batch in a new view.
type PlanBatch struct {
	Seq    Seq
	Digest Digest
	Null   bool // no prepared claim chosen: the null batch (BatchDigest(nil))
}

var nullDigest = BatchDigest(nil)

// NewViewPlan is the new primary's decision procedure with MACs (Castro,
// TOCS 2002 §4.5; thesis §3.2.4). Replicas cannot prove what they
// prepared, so a claim wins only when enough replicas back it. Given the
// view-change messages S (at least 2f+1 for one view, distinct senders):
//
// Checkpoint: the highest (n, d) such that 2f+1 messages have a stable
// checkpoint at or below n and f+1 claim (n, d) as stable (so a correct
// replica has it).
//
// For each n above it, digest d from a message claiming P = (v, n, d) if
// A1: 2f+1 messages with stable checkpoint below n have, for n, no
// prepared entry, or one in a view below v, or (v, d); and A2: f+1
// messages pre-prepared (v', n, d) with v' >= v. Else the null batch if B:
// 2f+1 messages with stable checkpoint below n have no prepared entry for
// n. Else ok is false: wait for more view changes.
//
// A committed batch was prepared by f+1 correct replicas, so a lie about
// a higher view cannot pass A2 (it needs a correct replica's pre-prepare)
// and a competing digest cannot pass A1 (it needs one of those f+1).
func NewViewPlan(n, f int, vcs []Message) (Plan, bool) {
	type claims struct {
		stable Seq
		digest Digest
		bySeq  map[Seq]Prepared
	}
	var ms []claims
	seen := map[ReplicaID]bool{}
	for _, m := range vcs {
		if m.Kind != KindViewChange || m.ViewChange == nil || int(m.From) >= n || seen[m.From] ||
			m.View != vcs[0].View {
			return Plan{}, false
		}
		seen[m.From] = true
		c := claims{stable: m.ViewChange.Stable, digest: m.ViewChange.StableDigest, bySeq: map[Seq]Prepared{}}
		for _, p := range m.ViewChange.Prepared {
			if _, dup := c.bySeq[p.Seq]; !dup && p.Seq > c.stable {
				c.bySeq[p.Seq] = p
			}
		}
		ms = append(ms, c)
	}
	if len(ms) < 2*f+1 {
		return Plan{}, false
	}

	var plan Plan
	found := false
	for _, c := range ms {
		if found && c.stable <= plan.Checkpoint {
			continue
		}
		low, same := 0, 0
		for _, o := range ms {
			if o.stable <= c.stable {
				low++
			}
			if o.stable == c.stable && o.digest == c.digest {
				same++
			}
		}
		if low >= 2*f+1 && same >= f+1 {
			plan.Checkpoint, plan.CheckpointDigest, found = c.stable, c.digest, true
		}
	}
	if !found {
		return Plan{}, false
	}

	// Only sequence numbers some message claims prepared need deciding:
	// for the others B holds (2f+1 messages are at or below the checkpoint).
	var seqs []Seq
	for _, c := range ms {
		for s, p := range c.bySeq {
			if s > plan.Checkpoint && p.PDigest != (Digest{}) {
				seqs = append(seqs, s)
			}
		}
	}
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)

	chosen := map[Seq]Digest{}
	var top Seq
	for _, s := range seqs {
		var cands []vote
		for _, c := range ms {
			if p, ok := c.bySeq[s]; ok && p.PDigest != (Digest{}) {
				cands = append(cands, vote{p.PView, p.PDigest})
			}
		}
		slices.SortFunc(cands, func(a, b vote) int {
			if c := cmpU64(b.view, a.view); c != 0 {
				return c
			}
			return slices.Compare(a.digest[:], b.digest[:])
		})
		ok := false
		for _, cand := range cands {
			a1, a2 := 0, 0
			for _, c := range ms {
				p, has := c.bySeq[s]
				prepared := has && p.PDigest != (Digest{})
				if c.stable < s && (!prepared || p.PView < cand.view || p.PView == cand.view && p.PDigest == cand.digest) {
					a1++
				}
				if has && slices.ContainsFunc(p.Q, func(q PrePrepared) bool {
					return q.View >= cand.view && q.Digest == cand.digest
				}) {
					a2++
				}
			}
			if a1 >= 2*f+1 && a2 >= f+1 {
				chosen[s], top, ok = cand.digest, s, true
				break
			}
		}
		if ok {
			continue
		}
		b := 0
		for _, c := range ms {
			if p, has := c.bySeq[s]; c.stable < s && (!has || p.PDigest == (Digest{})) {
				b++
			}
		}
		if b < 2*f+1 {
			return Plan{}, false
		}
	}
	for s := plan.Checkpoint + 1; s <= top; s++ {
		if d, ok := chosen[s]; ok {
			plan.Batches = append(plan.Batches, PlanBatch{Seq: s, Digest: d})
		} else {
			plan.Batches = append(plan.Batches, PlanBatch{Seq: s, Digest: nullDigest, Null: true})
		}
	}
	return plan, true
}
