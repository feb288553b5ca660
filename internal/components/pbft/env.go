package pbft

import (
	"log/slog"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/auth"
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

func (e *replicaEnv) replicaConfig(id protocol.ReplicaID, app protocol.Application) protocol.Config {
	return protocol.Config{ID: id, N: e.n, CheckpointInterval: checkpointInterval, BatchSize: batchSize,
		BatchTimeout: batchTimeoutTicks, ViewChangeTimeout: viewChangeTicks, App: app,
		UnsafePrepareQuorum: e.unsafeQuorum[0], UnsafeCommitQuorum: e.unsafeQuorum[1]}
}
