package byzantine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// maxAlts bounds equivocate's memory: the alternative batches of the most
// recent sequence numbers it pre-prepared.
const maxAlts = 256

// equivocate sends, as primary, a different batch to some of the backups
// for each (view, seq), and keeps its prepares and commits consistent with
// what each backup was sent.
type equivocate struct {
	self  protocol.ReplicaID
	n     int
	share float64
	rng   *rand.Rand
	alts  map[protocol.Seq]*alt
	order []protocol.Seq // insertion order of alts' keys, a ring of maxAlts
	next  int            // where order's next key goes (its oldest, once full)
}

// alt is the alternative version of one pre-prepare.
type alt struct {
	view   protocol.View
	orig   protocol.Digest // the digest the genuine version carries
	digest protocol.Digest // BatchDigest(batch)
	batch  []protocol.Request
	to     []bool // by receiver: sent the alternative
}

func newEquivocate(c config, self protocol.ReplicaID, n int, rng *rand.Rand) (Behavior, error) {
	if n < 3 {
		return nil, fmt.Errorf("byzantine: %s: n = %d: needs at least 3 replicas (two backups to disagree)", Equivocate, n)
	}
	return &equivocate{self: self, n: n, share: c.share, rng: rng, alts: map[protocol.Seq]*alt{}}, nil
}

func (*equivocate) Name() string { return Equivocate }

func (e *equivocate) Outgoing(out Out) []Out {
	m := out.Msg
	if m.From != e.self {
		return []Out{out}
	}
	switch m.Kind {
	case protocol.KindPrePrepare:
		if a := e.altFor(m); a.gets(out.To) {
			m.Batch, m.Digest = a.batch, a.digest
		}
	case protocol.KindPrepare, protocol.KindCommit:
		if a := e.alts[m.Seq]; a != nil && a.view == m.View && a.orig == m.Digest && a.gets(out.To) {
			m.Digest = a.digest
		}
	}
	out.Msg = m
	return []Out{out}
}

func (a *alt) gets(to protocol.ReplicaID) bool { return int64(to) < int64(len(a.to)) && a.to[to] }

// altFor is the alternative version of pre-prepare m, made the first time
// m is sent (to its first receiver).
func (e *equivocate) altFor(m protocol.Message) *alt {
	if a := e.alts[m.Seq]; a != nil && a.view == m.View && a.orig == m.Digest {
		return a
	}
	a := &alt{view: m.View, orig: m.Digest, batch: altBatch(e.rng, m.Batch), to: make([]bool, e.n)}
	a.digest = protocol.BatchDigest(a.batch)
	backups := make([]protocol.ReplicaID, 0, e.n-1)
	for r := range protocol.ReplicaID(e.n) {
		if r != e.self {
			backups = append(backups, r)
		}
	}
	// Both sides non-empty: an equivocation, whatever the share.
	k := min(max(int(math.Round(e.share*float64(len(backups)))), 1), len(backups)-1)
	e.rng.Shuffle(len(backups), func(i, j int) { backups[i], backups[j] = backups[j], backups[i] })
	for _, r := range backups[:k] {
		a.to[r] = true
	}
	if _, ok := e.alts[m.Seq]; !ok {
		if len(e.order) < maxAlts {
			e.order = append(e.order, m.Seq)
		} else {
			delete(e.alts, e.order[e.next])
			e.order[e.next] = m.Seq
			e.next = (e.next + 1) % maxAlts
		}
	}
	e.alts[m.Seq] = a
	return a
}

// altBatch is a copy of batch with one change: a request dropped, two
// swapped or one's op altered (a made-up request added to an empty batch).
// Its digest always differs from batch's.
func altBatch(rng *rand.Rand, batch []protocol.Request) []protocol.Request {
	if len(batch) == 0 {
		return []protocol.Request{{Client: rng.Uint64(), Timestamp: 1, Op: alterOp(rng, nil)}}
	}
	switch rng.IntN(3) {
	case 0: // drop one
		i := rng.IntN(len(batch))
		return slices.Delete(slices.Clone(batch), i, i+1)
	case 1: // swap two different requests
		if len(batch) >= 2 {
			i := rng.IntN(len(batch))
			j := (i + 1 + rng.IntN(len(batch)-1)) % len(batch)
			c := slices.Clone(batch)
			c[i], c[j] = c[j], c[i]
			if protocol.BatchDigest(c) != protocol.BatchDigest(batch) {
				return c
			}
		}
	}
	return alterRequest(rng, batch, rng.IntN(len(batch)))
}
