package protocol

import (
	"errors"
	"fmt"
	"slices"
)

// Replica is one PBFT replica's deterministic state machine. It is not
// safe for concurrent use; the shell serializes Step, Tick and Ready.
type Replica struct {
	cfg     Config
	id      ReplicaID
	n, f    int
	k, l    Seq
	quorumP int // prepares (besides the pre-prepare) to be prepared
	quorumC int // commits to commit
	// stuck counts ticks without an execution since lastExec was stuckAt,
	// with batches waiting (retransmission).
	stuck    int
	stuckAt  Seq
	ticks    uint64                   // logical time
	answered map[ReplicaID]answerMark // last answer to each peer's retransmission

	view       View
	inVC       bool     // sent a view change for view, no new view yet
	vcAttempts int      // consecutive view changes without a new view
	timer      int      // ticks waited: for a pending request, or for a new view
	resend     int      // ticks since our view change was last sent
	newView    *Message // the new-view message that started view (for laggards)

	lastExec     Seq
	lastAssigned Seq
	stable       Seq
	stableDigest Digest
	proof        []Message
	ckpts        map[Seq]Checkpoint            // own, at seqs >= stable
	votes        map[Seq]map[ReplicaID]Message // checkpoint messages in (stable, stable+L]
	latestCkpt   map[ReplicaID]ckRef           // each replica's highest checkpoint claim
	log          map[Seq]*entry                // (stable, stable+L]
	future       map[Seq]Message               // pre-prepares for a view not yet started
	vcs          map[ReplicaID]Message         // each replica's latest view change
	peerView     map[ReplicaID]View            // highest view of a peer's normal-case message
	replies      map[uint64]cachedReply        // one per client
	pending      map[uint64]pend               // one per client
	offers       map[ReplicaID]Message         // state transfer: one state per replica
	arrivals     uint64
	batchWait    int
	fetchWait    int
	fetchMark    Seq
	nvTarget     ckRef // checkpoint a new view chose above our state

	ready Ready
}

type ckRef struct {
	seq    Seq
	digest Digest
}

type cachedReply struct {
	ts     uint64
	result []byte
}

type pend struct {
	req      Request
	arrival  uint64
	assigned bool // put in a batch by this replica as primary, in this view
}

// NewReplica validates cfg, fills in its defaults and returns a replica at
// view 0, sequence 0.
func NewReplica(cfg Config) (*Replica, error) {
	if cfg.N < 4 {
		return nil, fmt.Errorf("pbft: N = %d, want at least 4", cfg.N)
	}
	if int(cfg.ID) >= cfg.N {
		return nil, fmt.Errorf("pbft: ID %d out of range for N = %d", cfg.ID, cfg.N)
	}
	if cfg.App == nil {
		return nil, errors.New("pbft: no Application")
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 16
	}
	if cfg.WatermarkWindow == 0 {
		cfg.WatermarkWindow = 2 * cfg.CheckpointInterval
	}
	if cfg.WatermarkWindow < 2*cfg.CheckpointInterval {
		return nil, fmt.Errorf("pbft: watermark window %d below 2K = %d", cfg.WatermarkWindow, 2*cfg.CheckpointInterval)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.Pipeline <= 0 {
		cfg.Pipeline = 2
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 1
	}
	if cfg.ViewChangeTimeout <= 0 {
		cfg.ViewChangeTimeout = 20
	}
	f := (cfg.N - 1) / 3
	r := &Replica{
		cfg: cfg, id: cfg.ID, n: cfg.N, f: f,
		k: cfg.CheckpointInterval, l: cfg.WatermarkWindow, quorumP: 2 * f,
		ckpts:      map[Seq]Checkpoint{},
		votes:      map[Seq]map[ReplicaID]Message{},
		latestCkpt: map[ReplicaID]ckRef{},
		log:        map[Seq]*entry{},
		future:     map[Seq]Message{},
		vcs:        map[ReplicaID]Message{},
		peerView:   map[ReplicaID]View{},
		replies:    map[uint64]cachedReply{},
		pending:    map[uint64]pend{},
		offers:     map[ReplicaID]Message{},
		answered:   map[ReplicaID]answerMark{},
	}
	if cfg.UnsafePrepareQuorum > 0 {
		r.quorumP = cfg.UnsafePrepareQuorum
	}
	r.quorumC = 2*r.f + 1
	if cfg.UnsafeCommitQuorum > 0 {
		r.quorumC = cfg.UnsafeCommitQuorum
	}
	return r, nil
}

func (r *Replica) primaryOf(v View) ReplicaID { return ReplicaID(uint64(v) % uint64(r.n)) }

func (r *Replica) isPrimary() bool { return r.primaryOf(r.view) == r.id }

func (r *Replica) inWindow(s Seq) bool { return s > r.stable && s <= r.stable+r.l }

func (r *Replica) broadcast(m Message) {
	m.From = r.id
	r.ready.Messages = append(r.ready.Messages, Envelope{All: true, Msg: m})
}

func (r *Replica) send(to ReplicaID, m Message) {
	r.ready.Messages = append(r.ready.Messages, Envelope{To: to, Msg: m})
}

// Step processes one authenticated message.
func (r *Replica) Step(m Message) error {
	if m.Kind != KindRequest && int(m.From) >= r.n {
		return reject(ReasonMalformed, m, "sender out of range")
	}
	if m.Kind != KindRequest && m.From == r.id {
		return reject(ReasonMalformed, m, "from self")
	}
	switch m.Kind {
	case KindRequest:
		return r.onRequest(m)
	case KindPrePrepare:
		return r.onPrePrepare(m)
	case KindPrepare, KindCommit:
		return r.onVote(m)
	case KindCheckpoint:
		return r.onCheckpoint(m)
	case KindViewChange:
		return r.onViewChange(m)
	case KindNewView:
		return r.onNewView(m)
	case KindFetch:
		return r.onFetch(m)
	case KindState:
		return r.onState(m)
	default:
		return reject(ReasonMalformed, m, "unexpected kind")
	}
}

// Tick advances logical time by one: batch timeout, view-change timer,
// state-transfer retries.
func (r *Replica) Tick() {
	r.ticks++
	if r.isPrimary() && !r.inVC && r.hasUnassigned() {
		r.batchWait++
		if r.batchWait >= r.cfg.BatchTimeout {
			r.maybeBatch(true)
		}
	}
	r.tickViewChange()
	r.tickFetch()
	r.tickRetransmit()
}

// HasReady reports whether Ready has anything.
func (r *Replica) HasReady() bool {
	rd := &r.ready
	return len(rd.Messages) > 0 || len(rd.Replies) > 0 || len(rd.Committed) > 0 ||
		len(rd.Checkpoints) > 0 || rd.Stable != 0
}

// Ready returns and clears what accumulated.
func (r *Replica) Ready() Ready {
	rd := r.ready
	r.ready = Ready{}
	return rd
}

// Status reports the replica's state.
func (r *Replica) Status() Status {
	return Status{
		View: r.view, Primary: r.primaryOf(r.view), InViewChange: r.inVC,
		LowWatermark: r.stable, LastExecuted: r.lastExec, LastAssigned: r.lastAssigned,
		Certificates: len(r.log) + len(r.votes) + len(r.future),
		Pending:      len(r.pending),
	}
}

func (r *Replica) onRequest(m Message) error {
	if m.Request == nil {
		return reject(ReasonMalformed, m, "no request")
	}
	req := *m.Request
	if c, ok := r.replies[req.Client]; ok {
		if req.Timestamp < c.ts {
			return reject(ReasonStale, m, "timestamp below the client's last executed")
		}
		if req.Timestamp == c.ts {
			r.reply(req.Client, c)
			return nil
		}
	}
	if p, ok := r.pending[req.Client]; ok && p.req.Timestamp >= req.Timestamp {
		return nil
	}
	if len(r.pending) == 0 {
		r.timer = 0
	}
	r.arrivals++
	r.pending[req.Client] = pend{req: req, arrival: r.arrivals}
	r.maybeBatch(false)
	return nil
}

func (r *Replica) reply(client uint64, c cachedReply) {
	r.ready.Replies = append(r.ready.Replies, Message{Kind: KindReply, From: r.id, View: r.view,
		Reply: &Reply{Client: client, Timestamp: c.ts, View: r.view, Result: c.result}})
}

func (r *Replica) hasUnassigned() bool {
	for _, p := range r.pending {
		if !p.assigned {
			return true
		}
	}
	return false
}

// maybeBatch pre-prepares pending requests as primary: a full batch at
// once, a partial one at once while fewer than Pipeline batches are in
// flight and otherwise on timeout, never above h + L/2 so that the
// backups' windows hold the batch while the checkpoint catches up.
func (r *Replica) maybeBatch(timeout bool) {
	if r.inVC || !r.isPrimary() {
		return
	}
	for {
		var reqs []pend
		for _, p := range r.pending {
			if !p.assigned {
				reqs = append(reqs, p)
			}
		}
		if len(reqs) == 0 {
			r.batchWait = 0
			return
		}
		// A partial batch waits (for more requests or the timeout) only
		// while the pipeline is full: an idle primary orders at once, so
		// a light load sees no batching delay.
		inFlight := int(r.lastAssigned) - int(r.lastExec)
		if len(reqs) < r.cfg.BatchSize && !timeout && inFlight >= r.cfg.Pipeline {
			return
		}
		next := r.lastAssigned + 1
		if next > r.stable+r.l/2 {
			return
		}
		slices.SortFunc(reqs, func(a, b pend) int { return cmpU64(a.arrival, b.arrival) })
		reqs = reqs[:min(len(reqs), r.cfg.BatchSize)]
		batch := make([]Request, len(reqs))
		for i, p := range reqs {
			batch[i] = p.req
			p.assigned = true
			r.pending[p.req.Client] = p
		}
		r.lastAssigned = next
		pp := Message{Kind: KindPrePrepare, From: r.id, View: r.view, Seq: next, Digest: BatchDigest(batch), Batch: batch}
		r.broadcast(pp)
		r.batchWait = 0
		r.acceptPrePrepare(pp)
	}
}

func cmpU64[T ~uint64 | ~uint32](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
