// Package raft is the Raft-replicated key-value store soakd keeps under load
// (issue W1-3): components.raft.nodes in-process nodes of
// github.com/hashicorp/raft that talk real TCP on loopback and keep their
// data under <state-dir>/components/raft/<node>/.
//
// Why hashicorp/raft: it is the mature library behind Consul and Nomad, it
// ships a TCP NetworkTransport whose StreamLayer lets us route every
// node-to-node connection through the run's components.Dialer (the fault
// fabric's link hook), a FileSnapshotStore with retention, automatic
// snapshot-and-truncate log compaction, and a documented error model for
// Apply that maps onto soakd's ok / failed / unknown outcomes (see
// classify in client.go). go.etcd.io/raft/v3 would have meant writing the
// storage, transport and snapshot plumbing ourselves.
//
// Log store: github.com/hashicorp/raft-boltdb/v2 v2.3.0 (bbolt), one file
// per node holding both the log and the stable store, fsynced on every
// commit (NoSync is never set). It is Consul's default store; v2.3.1 does
// not resolve against the go-metrics v0.7.0 that hashicorp/raft v1.8.0
// needs (it imports go-metrics/compat, which v0.7.0 dropped), v2.3.0 does.
// bbolt reuses pages freed by log truncation, so once snapshots truncate the
// log the file stops growing: its size is bounded by the largest live log
// (see the compaction constants in cluster.go), not by the run length.
//
// Reads are linearizable because a get is a command applied through the
// log like a write (fsm.go explains why that suffices).
//
// A member can also run as its own process (node.go, `soakd node`): the
// same FSM, stores and transport, its peers at network addresses given on
// the command line, every member bootstrapping a brand-new cluster with the
// same configuration. It answers ops over HTTP only as leader (a follower
// names the leader); a SIGKILLed member restarted on its state dir
// recovers from its disk and rejoins. Processes (procs.go) is the
// component in components.raft.mode processes: it starts and supervises
// those node processes, sends ops to the leader's HTTP API (an op whose
// request never connected failed; one whose answer was lost is unknown),
// and crashes a node with SIGKILL. In components.raft.mode remote
// (NewRemote) the same type drives node processes soakd did not start, at
// components.raft.addresses, and refuses to crash them or to have their
// links faulted (components.ExternalLinks). Both modes list their nodes'
// processes for the leak checker (components.ProcessTargets).
//
// Imports: components and config of soakd's internals, nothing else. The
// linearizability checker lives elsewhere; this package exposes every
// finished operation through the Recorder hook.
package raft
