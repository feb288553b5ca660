// Package pbft is the PBFT component: n = 3f+1 replicas
// (components.pbft.replicas) of a key-value service (package kv, the Raft
// component's put, get and cas), each a deterministic core (package
// protocol) driven by one loop goroutine, in soakd or in a `soakd node`
// process of its own (components.pbft.mode), talking to its peers over real
// TCP on loopback through the component's Dialer (so network faults apply),
// with its executed batches and stable checkpoints on disk (fsync'd).
//
// Rooms:
//   - node.go: a replica's loop (messages, ticks, Ready), its listener,
//     crash and restart; what it executed is durable before anything that
//     follows from it is sent.
//   - transport.go: one writer per peer link with a bounded queue.
//   - storage.go: the stable checkpoint and the log of batches executed
//     since, with CRCs (a torn tail is cut off).
//   - client.go: operations as client requests to every replica, answered
//     by f+1 matching replies; the history goes to the linearizability
//     checker.
//   - component.go, metrics.go: the Component (replicas as Nodes, targets
//     primary, backup, minority, node-N), Byzantine behaviours on a
//     replica's sends (package byzantine), metrics.
//   - twin.go: the twin behaviour, a second copy of a replica in its loop.
//   - msgfaults.go: message-level network faults (drop, duplicate,
//     reorder) on a replica's links, below authentication.
//   - checks.go: the streaming checkers (package pbftcheck) fed from the
//     loops and the clients.
//   - env.go: what a replica shares with its cluster and reports to (its
//     sink): the Cluster in this process, or a Host.
//   - host.go: one replica as a `soakd node` process (Host): its peers at
//     fixed addresses, what it executes, checkpoints, restores and answers
//     streamed to the soakd watching it (GET /pbft/v1/events), Byzantine
//     behaviours and message faults set over its API.
//   - procs.go: the Cluster's side of replicas as processes
//     (components.pbft.mode processes or remote): requests to each
//     replica's protocol address, its event stream fed to the clients and
//     checkers as an in-process replica's loop feeds them; crash a SIGKILL.
//
// Messages are authenticated (package auth): MAC authenticators on the
// normal case, Ed25519 signatures on checkpoints, view changes and new
// views; a replica's link reader drops a message that fails before the
// core sees it.
package pbft
