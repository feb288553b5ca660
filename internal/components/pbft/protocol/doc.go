// Package protocol is PBFT's deterministic core (Castro and Liskov, OSDI
// 1999 and TOCS 2002), in the style of go.etcd.io/raft: a Replica is a pure
// state machine driven by Step (an authenticated message), Tick (logical
// time) and client requests, and it hands the shell a Ready batch: messages
// to send, batches executed, replies for clients, checkpoints to persist.
// No goroutines, sockets, clocks or randomness of its own: the same inputs
// give the same outputs, so a seeded simulation replays exactly.
//
// Authentication is the shell's (package auth): a message reaches Step
// only once its MAC or signature checked out.
package protocol
