package byzantine

import (
	"math/rand/v2"
	"slices"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// recentDigests is how many recent digests mutate keeps to swap in.
const recentDigests = 16

// mutate changes one field of a message to a random subset of receivers.
type mutate struct {
	share  float64
	kinds  kindSet
	rng    *rand.Rand
	recent [recentDigests]protocol.Digest
	nrec   int // digests in recent
	next   int // where the next goes
}

func newMutate(c config, _ protocol.ReplicaID, _ int, rng *rand.Rand) (Behavior, error) {
	return &mutate{share: c.share, kinds: c.kinds, rng: rng}, nil
}

func (*mutate) Name() string { return Mutate }

// field is one field mutate can change.
type field uint8

const (
	fieldView field = iota
	fieldSeq
	fieldDigest
	fieldOp
)

// fields are the fields a message of m's kind uses that mutate changes.
func fields(m *protocol.Message) []field {
	var fs []field
	switch m.Kind {
	case protocol.KindPrePrepare, protocol.KindPrepare, protocol.KindCommit, protocol.KindViewChange, protocol.KindNewView:
		fs = append(fs, fieldView)
	}
	switch m.Kind {
	case protocol.KindPrePrepare, protocol.KindPrepare, protocol.KindCommit, protocol.KindCheckpoint,
		protocol.KindFetch, protocol.KindState:
		fs = append(fs, fieldSeq)
	}
	switch m.Kind {
	case protocol.KindPrePrepare, protocol.KindPrepare, protocol.KindCommit, protocol.KindCheckpoint, protocol.KindState:
		fs = append(fs, fieldDigest)
	}
	if (m.Kind == protocol.KindPrePrepare && len(m.Batch) > 0) || (m.Kind == protocol.KindRequest && m.Request != nil) {
		fs = append(fs, fieldOp)
	}
	return fs
}

func (u *mutate) Outgoing(out Out) []Out {
	m := out.Msg
	if !u.kinds.match(m.Kind) || u.rng.Float64() >= u.share {
		u.remember(m.Digest)
		return []Out{out}
	}
	fs := fields(&m)
	if len(fs) == 0 {
		return []Out{out}
	}
	switch fs[u.rng.IntN(len(fs))] {
	case fieldView:
		if m.View == 0 || u.rng.IntN(2) == 0 {
			m.View++
		} else {
			m.View--
		}
	case fieldSeq:
		if m.Seq == 0 || u.rng.IntN(2) == 0 {
			m.Seq++
		} else {
			m.Seq--
		}
	case fieldDigest:
		m.Digest = u.otherDigest(m.Digest)
	case fieldOp:
		if m.Kind == protocol.KindRequest {
			r := *m.Request
			r.Op = alterOp(u.rng, r.Op)
			m.Request = &r
		} else {
			m.Batch = alterRequest(u.rng, m.Batch, u.rng.IntN(len(m.Batch)))
		}
	}
	u.remember(out.Msg.Digest)
	out.Msg = m
	return []Out{out}
}

// remember keeps d among the recent digests.
func (u *mutate) remember(d protocol.Digest) {
	if d == (protocol.Digest{}) || slices.Contains(u.recent[:u.nrec], d) {
		return
	}
	u.recent[u.next] = d
	u.next = (u.next + 1) % recentDigests
	u.nrec = min(u.nrec+1, recentDigests)
}

// otherDigest is a recent digest other than d if there is one, else a
// random one.
func (u *mutate) otherDigest(d protocol.Digest) protocol.Digest {
	var others []protocol.Digest
	for _, r := range u.recent[:u.nrec] {
		if r != d {
			others = append(others, r)
		}
	}
	if len(others) > 0 {
		return others[u.rng.IntN(len(others))]
	}
	for {
		if r := randomDigest(u.rng); r != d {
			return r
		}
	}
}

// forge marks messages to a share of receivers for a bad authenticator.
type forge struct {
	share float64
	kinds kindSet
	rng   *rand.Rand
}

func newForge(c config, _ protocol.ReplicaID, _ int, rng *rand.Rand) (Behavior, error) {
	return &forge{share: c.share, kinds: c.kinds, rng: rng}, nil
}

func (*forge) Name() string { return Forge }

func (f *forge) Outgoing(out Out) []Out {
	if f.kinds.match(out.Msg.Kind) && f.rng.Float64() < f.share {
		out.Forge = true
	}
	return []Out{out}
}

// replayWindow is how many past messages replay keeps.
const replayWindow = 256

// replay re-sends old messages alongside new ones.
type replay struct {
	rate float64
	rng  *rand.Rand
	past [replayWindow]protocol.Message
	n    int // messages in past
	next int // where the next goes
}

func newReplay(c config, _ protocol.ReplicaID, _ int, rng *rand.Rand) (Behavior, error) {
	return &replay{rate: c.rate, rng: rng}, nil
}

func (*replay) Name() string { return Replay }

func (p *replay) Outgoing(out Out) []Out {
	outs := []Out{out}
	if p.n > 0 && p.rng.Float64() < p.rate {
		outs = append(outs, Out{To: out.To, Msg: p.past[p.rng.IntN(p.n)]})
	}
	m := out.Msg
	m.Auth = protocol.Auth{}
	p.past[p.next] = m
	p.next = (p.next + 1) % replayWindow
	p.n = min(p.n+1, replayWindow)
	return outs
}

// silent drops messages: all, or those of its kinds.
type silent struct{ kinds kindSet }

func newSilent(c config, _ protocol.ReplicaID, _ int, _ *rand.Rand) (Behavior, error) {
	return silent{kinds: c.kinds}, nil
}

func (silent) Name() string { return Silent }

func (s silent) Outgoing(out Out) []Out {
	if s.kinds.match(out.Msg.Kind) {
		return nil
	}
	return []Out{out}
}

// lieViewChange rewrites the replica's own view-change messages.
type lieViewChange struct {
	self  protocol.ReplicaID
	stale bool
	rng   *rand.Rand
}

func newLieViewChange(c config, self protocol.ReplicaID, _ int, rng *rand.Rand) (Behavior, error) {
	return &lieViewChange{self: self, stale: c.mode == "stale", rng: rng}, nil
}

func (*lieViewChange) Name() string { return LieViewChange }

func (l *lieViewChange) Outgoing(out Out) []Out {
	m := out.Msg
	if m.Kind != protocol.KindViewChange || m.From != l.self || m.ViewChange == nil {
		return []Out{out}
	}
	vc := *m.ViewChange
	if l.stale {
		vc.Prepared = nil
	} else {
		vc.Prepared = l.forged(m.View, &vc)
	}
	m.ViewChange = &vc
	out.Msg = m
	return []Out{out}
}

// forged is vc's Prepared with one claim forged: a random digest prepared
// (and pre-prepared) in the view before the new one, at the sequence
// number of a genuine entry or at the one after them all.
func (l *lieViewChange) forged(newView protocol.View, vc *protocol.ViewChange) []protocol.Prepared {
	pv := newView
	if pv > 0 {
		pv--
	}
	d := randomDigest(l.rng)
	ps := slices.Clone(vc.Prepared)
	if i := l.rng.IntN(len(ps) + 1); i < len(ps) {
		p := &ps[i]
		p.PView, p.PDigest = pv, d
		p.Q = append(slices.Clip(p.Q), protocol.PrePrepared{View: pv, Digest: d})
		return ps
	}
	seq := vc.Stable
	for _, p := range ps {
		seq = max(seq, p.Seq)
	}
	return append(ps, protocol.Prepared{
		Seq: seq + 1, PView: pv, PDigest: d,
		Q: []protocol.PrePrepared{{View: pv, Digest: d}},
	})
}

// twin passes everything through: the shell runs the twin replica.
type twin struct{}

func (twin) Name() string           { return Twin }
func (twin) Outgoing(out Out) []Out { return []Out{out} }
