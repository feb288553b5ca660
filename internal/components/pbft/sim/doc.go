// Package sim is a deterministic whole-cluster simulator of the PBFT
// core: n protocol.Replicas, closed-loop key-value clients and a seeded
// network, in one goroutine, with logical time (ticks) instead of a clock.
//
// Everything a run does follows from Options.Seed (math/rand/v2 PCGs):
// the order messages are delivered in within a tick, their delays and
// drops, the clients' operations, the keys, the Byzantine behaviours'
// choices. The same Options give the same Result, down to TraceHash (a
// hash of every message's encoding, endpoints, tick and fate) and the
// commit log of every replica.
//
// The network does what the real shell (package pbft's node and client)
// does to a message: a replica's outgoing message is sealed (its own
// nested checkpoints and view change signed), passed, one copy per
// receiver, through the replica's Byzantine behaviour if it has one
// (byzantine.Behavior), authenticated by its real sender
// (auth.Keys.Authenticate; auth.Forge when the behaviour asks), encoded
// with wire.Append and decoded with wire.Decode on arrival, where the
// receiver checks auth.Keys.Verify and auth.Keys.VerifyRequests before it
// calls Step. A message that fails is not delivered and is counted by
// reason in Result.Failures; Step's rejections are counted in
// Result.Rejected. Replies go to the clients authenticated too (a
// Byzantine replica's replies are its core's, as in the shell).
//
// Clients issue put, get and cas operations on a few keys, one at a time,
// each authenticated (AuthenticateRequest) and sent to every replica,
// resent every RetransmitTicks until f+1 distinct replicas reply with
// the same result. Their history is checked for
// linearizability (package check) with synthetic times: Base + tick *
// TickDuration, plus a nanosecond per event within a tick, so times are
// distinct and ordered as the events were.
//
// Each replica's application is the kv store behind a witness that logs
// the ops it executes; every op of a run is unique (a get carries a
// nonce in its value, which the store ignores). pbftcheck is given, of
// each committed batch, the requests the application executed: a batch
// may order a request the replica executed at an earlier sequence number
// (a new primary re-proposing it), which the core skips. The witness
// reports an op executed twice, or outside the batches reported, as
// pbft_integrity. Options.RawCommitted feeds pbftcheck what
// Committed.Executed marks, as the shell does, and checks it against the
// witness.
//
// The twin behaviour runs a second copy of the replica, with its identity
// and keys, from empty state: it gets every message the replica gets and
// ticks with it; while it runs the replica talks to the even replica ids
// and its twin to the odd ones (the shell's twin.go).
//
// The correct replicas are checked as they run by package pbftcheck
// (agreement, integrity, validity, checkpoints): the Byzantine replicas
// are marked with SetByzantine. With ByzantineUntilTick the behaviours
// end at that tick (FaultEnded), and pbftcheck checks the liveness bounds
// from then: a commit within T1Ticks, and every request pending then
// finished within T2Ticks.
package sim
