package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// takeCheckpoint snapshots the state after executing s and votes for it.
func (r *Replica) takeCheckpoint(s Seq) {
	snap := encodeSnapshot(r.cfg.App.Snapshot(), r.replies)
	cp := Checkpoint{Seq: s, Digest: sha256.Sum256(snap), Snapshot: snap}
	r.ckpts[s] = cp
	r.ready.Checkpoints = append(r.ready.Checkpoints, cp)
	m := Message{Kind: KindCheckpoint, From: r.id, Seq: s, Digest: cp.Digest}
	r.broadcast(m)
	if r.inWindow(s) {
		r.addVote(m)
		r.checkStable(s)
	}
}

func (r *Replica) addVote(m Message) {
	vs := r.votes[m.Seq]
	if vs == nil {
		vs = map[ReplicaID]Message{}
		r.votes[m.Seq] = vs
	}
	vs[m.From] = m
}

func (r *Replica) onCheckpoint(m Message) error {
	if m.Seq == 0 || m.Seq%r.k != 0 {
		return reject(ReasonMalformed, m, "not a checkpoint seq")
	}
	r.noteCkpt(m.From, m.Seq, m.Digest)
	if m.Seq <= r.stable {
		return reject(ReasonStale, m, "")
	}
	if m.Seq > r.stable+r.l {
		return nil // only the lag detection's latestCkpt keeps it
	}
	r.addVote(m)
	r.checkStable(m.Seq)
	return nil
}

func (r *Replica) noteCkpt(from ReplicaID, s Seq, d Digest) {
	if s > r.latestCkpt[from].seq {
		r.latestCkpt[from] = ckRef{s, d}
	}
}

// checkStable makes our checkpoint at s stable once 2f+1 replicas
// (ourselves included) vouch for its digest.
func (r *Replica) checkStable(s Seq) {
	cp, ok := r.ckpts[s]
	if !ok || s <= r.stable {
		return
	}
	var proof []Message
	for _, m := range r.votes[s] {
		if m.Digest == cp.Digest {
			proof = append(proof, m)
		}
	}
	if len(proof) < 2*r.f+1 {
		return
	}
	slices.SortFunc(proof, func(a, b Message) int { return cmpU64(a.From, b.From) })
	r.makeStable(cp, proof)
}

// makeStable moves the low watermark to cp and discards everything at or
// below it: log entries, checkpoint votes, own older checkpoints.
func (r *Replica) makeStable(cp Checkpoint, proof []Message) {
	r.stable, r.stableDigest, r.proof = cp.Seq, cp.Digest, proof
	r.ready.Stable = cp.Seq
	for s := range r.log {
		if s <= cp.Seq {
			delete(r.log, s)
		}
	}
	for s := range r.future {
		if s <= cp.Seq {
			delete(r.future, s)
		}
	}
	for s := range r.votes {
		if s <= cp.Seq {
			delete(r.votes, s)
		}
	}
	for s := range r.ckpts {
		if s < cp.Seq {
			delete(r.ckpts, s)
		}
	}
	r.maybeBatch(false)
}

// fetchDelay is how many ticks a replica that looks behind waits, without
// executing anything, before it asks for state (and again between asks).
func (r *Replica) fetchDelay() int { return max(2, r.cfg.ViewChangeTimeout/4) }

// behind: f+1 replicas checkpointed above what we executed, a new view
// chose a checkpoint above it, or f+1 replicas are in a later view.
func (r *Replica) behind() bool {
	if r.nvTarget.seq > r.lastExec {
		return true
	}
	ahead, later := 0, 0
	for id, c := range r.latestCkpt {
		if id != r.id && c.seq > r.lastExec {
			ahead++
		}
	}
	for _, v := range r.peerView {
		if v > r.view {
			later++
		}
	}
	return ahead >= r.f+1 || later >= r.f+1
}

func (r *Replica) tickFetch() {
	if !r.behind() || r.lastExec != r.fetchMark {
		r.fetchWait, r.fetchMark = 0, r.lastExec
		return
	}
	r.fetchWait++
	if r.fetchWait >= r.fetchDelay() {
		r.fetchWait = 0
		r.broadcast(Message{Kind: KindFetch, View: r.view, Seq: r.lastExec})
	}
}

// onFetch answers with our stable checkpoint if it is above what the
// asker executed, and with the new view that started our view if the
// asker is in an earlier one (forwarded: it is signed by the primary).
func (r *Replica) onFetch(m Message) error {
	if cp, ok := r.ckpts[r.stable]; ok && r.stable > m.Seq {
		r.send(m.From, Message{Kind: KindState, From: r.id, Seq: cp.Seq, Digest: cp.Digest, State: cp.Snapshot})
	}
	if m.View < r.view && !r.inVC && r.newView != nil {
		r.send(m.From, *r.newView)
	}
	return nil
}

// onState keeps a state offer; it installs one whose digest f+1 replicas
// vouched for (checkpoint or state messages, or a new view's choice).
func (r *Replica) onState(m Message) error {
	if m.Seq == 0 || m.Seq%r.k != 0 || sha256.Sum256(m.State) != m.Digest {
		return reject(ReasonMalformed, m, "state does not match its digest")
	}
	r.noteCkpt(m.From, m.Seq, m.Digest)
	if m.Seq <= r.lastExec {
		return reject(ReasonStale, m, "")
	}
	if old, ok := r.offers[m.From]; !ok || old.Seq < m.Seq {
		r.offers[m.From] = m
	}
	var offers []Message
	for _, o := range r.offers {
		offers = append(offers, o)
	}
	slices.SortFunc(offers, func(a, b Message) int {
		if c := cmpU64(b.Seq, a.Seq); c != 0 {
			return c
		}
		return cmpU64(a.From, b.From)
	})
	for _, o := range offers {
		if o.Seq > r.lastExec && r.vouched(ckRef{o.Seq, o.Digest}) {
			if err := r.installState(Checkpoint{Seq: o.Seq, Digest: o.Digest, Snapshot: o.State}); err == nil {
				return nil
			}
			delete(r.offers, o.From)
		}
	}
	return nil
}

func (r *Replica) vouched(c ckRef) bool {
	if c == r.nvTarget {
		return true
	}
	count := 0
	for id := range ReplicaID(r.n) {
		m, ok := r.votes[c.seq][id]
		o, offered := r.offers[id]
		if r.latestCkpt[id] == c || ok && m.Digest == c.digest || offered && o.Seq == c.seq && o.Digest == c.digest {
			count++
		}
	}
	return count >= r.f+1
}

// installState replaces the state by a checkpoint (state transfer).
func (r *Replica) installState(cp Checkpoint) error {
	app, replies, err := decodeSnapshot(cp.Snapshot)
	if err != nil {
		return err
	}
	if err := r.cfg.App.Restore(app); err != nil {
		return err
	}
	r.replies = replies
	r.lastExec = cp.Seq
	r.lastAssigned = max(r.lastAssigned, cp.Seq)
	r.ckpts[cp.Seq] = cp
	r.ready.Checkpoints = append(r.ready.Checkpoints, cp)
	var proof []Message
	for _, m := range r.votes[cp.Seq] {
		if m.Digest == cp.Digest {
			proof = append(proof, m)
		}
	}
	slices.SortFunc(proof, func(a, b Message) int { return cmpU64(a.From, b.From) })
	r.makeStable(cp, proof)
	for c, p := range r.pending {
		if rc, ok := r.replies[c]; ok && p.req.Timestamp <= rc.ts {
			delete(r.pending, c)
		}
	}
	clear(r.offers)
	if r.nvTarget.seq <= cp.Seq {
		r.nvTarget = ckRef{}
	}
	r.fetchWait = 0
	r.executeReady()
	return nil
}

// Restore starts a fresh replica from a persisted stable checkpoint and
// re-executes the committed batches persisted after it. What the
// re-execution produces is not handed out again (the shell has it).
func (r *Replica) Restore(cp Checkpoint, after []Committed) error {
	if r.lastExec != 0 || len(r.log) != 0 {
		return errors.New("pbft: Restore on a replica already running")
	}
	if sha256.Sum256(cp.Snapshot) != cp.Digest {
		return errors.New("pbft: checkpoint snapshot does not match its digest")
	}
	if cp.Seq > 0 {
		if err := r.installState(cp); err != nil {
			return err
		}
	}
	for _, c := range after {
		if c.Seq <= r.lastExec {
			continue
		}
		if c.Seq != r.lastExec+1 || BatchDigest(c.Batch) != c.Digest {
			return fmt.Errorf("pbft: restore: batch %d does not follow %d or does not match its digest", c.Seq, r.lastExec)
		}
		r.apply(c.View, c.Seq, c.Digest, c.Batch)
		r.view = max(r.view, c.View)
	}
	r.ready = Ready{}
	return nil
}

// encodeSnapshot: the application's snapshot, then the reply cache by
// client, all length-prefixed big-endian: deterministic.
func encodeSnapshot(app []byte, replies map[uint64]cachedReply) []byte {
	clients := make([]uint64, 0, len(replies))
	for c := range replies {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	b := binary.BigEndian.AppendUint64(nil, uint64(len(app)))
	b = append(b, app...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(clients)))
	for _, c := range clients {
		rc := replies[c]
		b = binary.BigEndian.AppendUint64(b, c)
		b = binary.BigEndian.AppendUint64(b, rc.ts)
		b = binary.BigEndian.AppendUint64(b, uint64(len(rc.result)))
		b = append(b, rc.result...)
	}
	return b
}

func decodeSnapshot(b []byte) (app []byte, replies map[uint64]cachedReply, err error) {
	bad := errors.New("pbft: malformed snapshot")
	u64 := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	bytes := func() ([]byte, bool) {
		n, ok := u64()
		if !ok || uint64(len(b)) < n {
			return nil, false
		}
		v := slices.Clone(b[:n])
		b = b[n:]
		return v, true
	}
	app, ok := bytes()
	if !ok {
		return nil, nil, bad
	}
	count, ok := u64()
	if !ok || count > uint64(len(b))/24 {
		return nil, nil, bad
	}
	replies = make(map[uint64]cachedReply, count)
	for range count {
		c, ok1 := u64()
		ts, ok2 := u64()
		res, ok3 := bytes()
		if !ok1 || !ok2 || !ok3 {
			return nil, nil, bad
		}
		replies[c] = cachedReply{ts: ts, result: res}
	}
	if len(b) != 0 {
		return nil, nil, bad
	}
	return app, replies, nil
}
