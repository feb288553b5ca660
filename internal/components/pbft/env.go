package pbft

import (
	"log/slog"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/auth"
	"github.com/soakd/soakd/internal/components/pbft/kv"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// replicaEnv is what a replica shares with the rest of its cluster and
// reports to: the keys, the protocol parameters, its links and the sink of
// what it executes. A Cluster is the env of its in-process replicas; a
// `soakd node` process (Host) makes one for its single replica.
type replicaEnv struct {
	n       int
	keys    *auth.Keys
	mode    auth.Mode
	maxKeys int
	log     *slog.Logger
	dial    components.Dialer
	m       *metrics
	// peerAddr is replica j's listener now ("" while it is down).
	peerAddr func(j int) string
	sink     replicaSink
	// diverge plants a bug for tests: the replica's store corrupts every
	// value it puts, so it executes what the others do with other results.
	diverge bool
	// unsafeQuorum is a test knob: the prepare and commit quorums
	// (protocol.Config.UnsafePrepareQuorum, UnsafeCommitQuorum).
	unsafeQuorum [2]int
}

// replicaSink hears what a replica's loop executed, checkpointed,
// restored and answered: the Cluster's checkers and clients in this
// process, or a node process's event stream (host.go).
type replicaSink interface {
	executed(id protocol.ReplicaID, cs []protocol.Committed)
	// checkpointed: a checkpoint taken (cp.Seq > 0) or the stable one moved.
	checkpointed(id protocol.ReplicaID, cp protocol.Checkpoint, stable protocol.Seq)
	restored(id protocol.ReplicaID, seq protocol.Seq)
	reply(from protocol.ReplicaID, m protocol.Message)
}

// newApp is a replica's replicated state machine, empty.
func (e *replicaEnv) newApp() protocol.Application {
	s := kv.New(e.maxKeys)
	if e.diverge {
		return divergent{s}
	}
	return s
}

// divergent is the planted bug of HostOptions.Diverge: a store whose puts
// store another value than the one asked, as a non-deterministic state
// machine would. PBFT masks one such replica; the checkers must not.
type divergent struct{ *kv.Store }

func (d divergent) Execute(op []byte) []byte {
	if o, err := kv.DecodeOp(op); err == nil && o.Kind == kv.OpPut {
		o.Value = append(o.Value[:len(o.Value):len(o.Value)], '~')
		op = kv.EncodeOp(o)
	}
	return d.Store.Execute(op)
}

func (e *replicaEnv) replicaConfig(id protocol.ReplicaID, app protocol.Application) protocol.Config {
	return protocol.Config{ID: id, N: e.n, CheckpointInterval: checkpointInterval, BatchSize: batchSize,
		BatchTimeout: batchTimeoutTicks, ViewChangeTimeout: viewChangeTicks, App: app,
		UnsafePrepareQuorum: e.unsafeQuorum[0], UnsafeCommitQuorum: e.unsafeQuorum[1]}
}
