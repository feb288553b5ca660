// Package components owns the contract every soak component (raft, pbft,
// migration) implements and the registry the run uses to build them. A
// component registers a Spec: its factory, whether the config enables it,
// its open-loop load, the target selectors it offers random faults, by
// Role (leader, follower, minority, link, byzantine, messages), and a
// run-long link profile (Links). What else it offers it says by the
// interfaces it implements: Nodes (crash and restart), TargetResolver
// (selectors to nodes), KVHistory, Summarizer (its status line),
// MessageFaults (single messages dropped, doubled, reordered). A component
// may use one built before it through Deps.Peer (migration keeps its owner
// records in raft).
//
// A key-value component implements KVHistory: the run hands it a
// KVRecorder (the linearizability checker) and it records every finished
// KVOp, the one history type soakd has.
//
// Components sit at the bottom of the data flow: they may import config,
// fsutil (small file helpers), registry and offheap (accounting for memory
// mapped for the systems under soak), and nothing else of soakd's
// internals. Load, faults and leakcheck drive them through this contract;
// components never import those packages.
package components
