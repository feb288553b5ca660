package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// ReplicaID numbers the replicas 0..n-1; the primary of view v is v mod n.
type ReplicaID uint32

// View is a view number.
type View uint64

// Seq is a sequence number: one batch of requests each.
type Seq uint64

// Digest is a SHA-256 digest: of a batch (pre-prepare, prepare, commit) or
// of the replicated state at a checkpoint.
type Digest [32]byte

// Request is a client's operation. Client and Timestamp make it unique: a
// replica executes each (client, timestamp) at most once, and only a
// timestamp above the client's last executed one.
type Request struct {
	Client    uint64
	Timestamp uint64
	Op        []byte // opaque to the protocol: the Application's
	// MACs is the client's authenticator, one MAC per replica over
	// client, timestamp and op. It travels inside pre-prepares, so a
	// backup can check that a faulty primary did not make the request up
	// (not part of BatchDigest).
	MACs [][]byte
}

// Kind is a message's type.
type Kind uint8

const (
	KindRequest    Kind = iota + 1 // client → replicas
	KindPrePrepare                 // primary → backups: (view, seq, digest) and the batch
	KindPrepare                    // backup → all: (view, seq, digest)
	KindCommit                     // replica → all: (view, seq, digest)
	KindCheckpoint                 // replica → all: (seq, state digest); signed
	KindViewChange                 // replica → all: ViewChange for View; signed
	KindNewView                    // new primary → all: NewView for View; signed
	KindReply                      // replica → client
	KindFetch                      // state transfer: ask for the stable checkpoint at Seq or later
	KindState                      // state transfer: the checkpoint (Seq, Digest, State)
)

var kindNames = [...]string{"", "request", "pre-prepare", "prepare", "commit", "checkpoint", "view-change",
	"new-view", "reply", "fetch", "state"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Signed reports whether messages of kind k carry a signature (they can be
// passed on as proof: checkpoints in a view change, view changes in a new
// view); the others carry a MAC authenticator.
func (k Kind) Signed() bool {
	return k == KindCheckpoint || k == KindViewChange || k == KindNewView || k == KindState
}

// Message is every protocol message: one struct with the fields its kind
// uses, so that a fault hook can rewrite any field of any message.
type Message struct {
	Kind   Kind
	From   ReplicaID // the sending replica (unused by a request)
	View   View
	Seq    Seq
	Digest Digest
	// Batch: the requests a pre-prepare orders (Digest is BatchDigest of it).
	Batch []Request
	// Request: a client's request.
	Request *Request
	// Reply: a replica's answer to a client.
	Reply *Reply
	// ViewChange, NewView: the view-change protocol's payloads.
	ViewChange *ViewChange
	NewView    *NewView
	// State: a checkpoint's snapshot, in state transfer.
	State []byte
	// Auth authenticates the message (set and checked by the shell).
	Auth Auth
}

// Reply is a replica's answer to one request.
type Reply struct {
	Client    uint64
	Timestamp uint64
	View      View
	Result    []byte
}

// Auth is a message's authenticator: MACs, one per receiving replica (an
// authenticator, HMAC-SHA256 with the pairwise key), or a signature
// (Ed25519), by Kind.Signed or the all-signatures mode.
type Auth struct {
	MACs [][]byte
	Sig  []byte
}

// Prepared is what a replica knows of one sequence number above its
// stable checkpoint when it changes view: the batch it prepared (a
// pre-prepare and 2f matching prepares it received) in the highest view
// it did, if any, and the batches it pre-prepared (accepted a pre-prepare
// for) with the highest view for each digest. With MACs a replica cannot
// prove what it received, so the new view is chosen from claims that
// enough replicas make (see NewViewPlan).
type Prepared struct {
	Seq Seq
	// P: prepared in view PView with digest PDigest (PView 0 and a zero
	// digest when it did not prepare).
	PView   View
	PDigest Digest
	// Q: pre-prepared digests, each with the highest view it was
	// pre-prepared in.
	Q []PrePrepared
	// Batch is the batch of PDigest or of one of Q's, when the replica
	// holds it (the new primary needs it to re-propose).
	Batches []BatchOf
}

// PrePrepared is one digest a replica accepted a pre-prepare for, and the
// highest view it did.
type PrePrepared struct {
	View   View
	Digest Digest
}

// BatchOf is a batch with its digest.
type BatchOf struct {
	Digest Digest
	Batch  []Request
}

// ViewChange is a replica's move to view NewView (the message's View).
type ViewChange struct {
	// Stable checkpoint: its sequence number and state digest, and the
	// 2f+1 signed checkpoint messages that make it stable.
	Stable       Seq
	StableDigest Digest
	Proof        []Message
	// Prepared: one entry per sequence number in (Stable, Stable+L] the
	// replica pre-prepared or prepared.
	Prepared []Prepared
}

// NewView starts view View: the 2f+1 signed view-change messages it was
// computed from, and the pre-prepares of the new view for the sequence
// numbers between the chosen checkpoint and the highest chosen batch (a
// null batch, no requests, for each gap). Receivers recompute both from
// ViewChanges and reject the new view unless they match.
type NewView struct {
	ViewChanges []Message
	PrePrepares []Message
}

// BatchDigest is the digest a pre-prepare, prepare and commit carry.
func BatchDigest(batch []Request) Digest {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(len(batch)))
	h.Write(b[:])
	for _, r := range batch {
		binary.BigEndian.PutUint64(b[:], r.Client)
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], r.Timestamp)
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], uint64(len(r.Op)))
		h.Write(b[:])
		h.Write(r.Op)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// Application is the deterministic service the replicas replicate (the
// key-value store): the same requests in the same order give the same
// results and the same snapshot on every correct replica.
type Application interface {
	// Execute applies one request and returns its result.
	Execute(op []byte) []byte
	// Snapshot is the whole state, deterministic: its SHA-256 (with the
	// reply cache) is the checkpoint digest.
	Snapshot() []byte
	// Restore replaces the state with a snapshot (state transfer).
	Restore(snapshot []byte) error
}
