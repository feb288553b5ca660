package protocol

import "fmt"

// Reasons a Step rejects a message (Rejected.Reason).
const (
	ReasonWrongView         = "wrong-view"
	ReasonOutsideWatermarks = "outside-watermarks"
	ReasonEquivocation      = "equivocation"
	ReasonBadDigest         = "bad-digest"
	ReasonNotPrimary        = "not-primary"
	ReasonBadNewView        = "bad-new-view"
	ReasonStale             = "stale"
	ReasonMalformed         = "malformed"
)

// Rejected is the error Step returns for a message it drops.
type Rejected struct {
	Reason string
	Kind   Kind
	From   ReplicaID
	View   View
	Seq    Seq
	Detail string
}

func (e *Rejected) Error() string {
	s := fmt.Sprintf("pbft: %s: %s from %d (view %d, seq %d)", e.Reason, e.Kind, e.From, e.View, e.Seq)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func reject(reason string, m Message, detail string) error {
	return &Rejected{Reason: reason, Kind: m.Kind, From: m.From, View: m.View, Seq: m.Seq, Detail: detail}
}

// Config configures a Replica.
type Config struct {
	ID ReplicaID
	N  int // 3f+1, f = (N-1)/3, N >= 4
	// CheckpointInterval is K (default 16).
	CheckpointInterval Seq
	// WatermarkWindow is L, at least 2K (default 2K).
	WatermarkWindow Seq
	// BatchSize is the most requests per batch (default 64).
	BatchSize int
	// BatchTimeout is how many ticks a partial batch waits (default 1).
	BatchTimeout int
	// Pipeline is how many batches the primary keeps in flight before a
	// partial batch waits for BatchTimeout (default 2).
	Pipeline int
	// ViewChangeTimeout is how many ticks a backup waits for a pending
	// request before it starts a view change (default 20); it doubles for
	// each consecutive view change that does not complete.
	ViewChangeTimeout int
	App               Application
	// UnsafePrepareQuorum, when > 0, replaces the 2f prepares a replica
	// needs (with the pre-prepare) to be prepared. Only for tests proving
	// the checkers can fail; never set in production.
	UnsafePrepareQuorum int
	// UnsafeCommitQuorum, when > 0, replaces the 2f+1 commits a replica
	// needs to commit. A small prepare quorum alone cannot split correct
	// replicas (any two 2f+1 commit quorums share a correct replica); with
	// both, an equivocating primary can. Tests only.
	UnsafeCommitQuorum int
}

// Envelope is a message to send: to one replica, or to every other one.
type Envelope struct {
	To  ReplicaID
	All bool
	Msg Message
}

// Ready is what a replica accumulated for the shell since the last Ready.
type Ready struct {
	Messages []Envelope
	// Replies: KindReply, one per executed request (and the cached reply
	// for a repeated one). Reply.Client says where to send it.
	Replies []Message
	// Committed: batches executed, in sequence order.
	Committed []Committed
	// Checkpoints taken (or installed by state transfer): persist them.
	Checkpoints []Checkpoint
	// Stable is the stable checkpoint if it moved (0 otherwise).
	Stable Seq
}

// Committed is one executed batch.
type Committed struct {
	View    View
	Seq     Seq
	Digest  Digest
	Batch   []Request
	Results [][]byte
	// Executed marks the requests this batch executed: a request a new
	// primary re-proposed after it had executed at an earlier sequence
	// number is skipped (at most once), and checkers must not see it
	// twice.
	Executed []bool
}

// Checkpoint is the replicated state after executing Seq: the
// application's snapshot and the reply cache; Digest is its SHA-256.
type Checkpoint struct {
	Seq      Seq
	Digest   Digest
	Snapshot []byte
}

// Status is a replica's state at a glance.
type Status struct {
	View         View
	Primary      ReplicaID
	InViewChange bool
	LowWatermark Seq // stable checkpoint
	LastExecuted Seq
	LastAssigned Seq // as primary
	// Certificates counts the entries of the message log (per sequence
	// number, per checkpoint, buffered pre-prepares): bounded by about L.
	Certificates int
	Pending      int
}
