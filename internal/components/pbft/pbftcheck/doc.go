// Package pbftcheck checks a PBFT cluster's execution as it streams in:
// pure, bounded-memory checkers the shell calls from its event loop. No
// goroutines, clocks or I/O: times are passed in. Only correct replicas
// are checked: SetByzantine marks the replicas currently Byzantine, and
// their reports are ignored (counted in Stats.Ignored) while they are.
//
// The shell reports, in the order it sees them:
//
//   - Executed(now, Execution): a batch a replica executed (the core's
//     Committed plus the replica);
//   - Checkpoint(replica, seq, digest): a replica's state digest at a
//     checkpoint;
//   - Stable(seq): the cluster's stable checkpoint advanced;
//   - Restored(replica, seq): a replica's state was replaced by the
//     checkpoint at seq (state transfer, restart);
//   - Issued(now, client, ts, OpDigest(op)) when a client sends a request,
//     Accepted(now, client, ts, result) when it accepts a reply;
//   - FaultStarted(now), FaultEnded(now) around each fault window, and
//     Tick(now) when nothing else happens.
//
// Each call returns the violations it found (nil if none); Stats counts
// them by invariant.
//
// # Invariants
//
// pbft_agreement: no two correct replicas execute different batch digests
// at the same seq. The first correct report at a seq is recorded (replica,
// digest, batch) and every later correct report at that seq is compared
// with it before anything is recorded, so a divergence is caught whichever
// replica reports first; one report differing from the first gives one
// violation (Replica, Digest, Batch: the later report; Other, OtherDigest,
// OtherBatch: the first). Also pbft_agreement: two correct replicas'
// results for the same request differ (Client, Timestamp, Result,
// OtherResult), checked while the request's record is held.
//
// pbft_integrity: no correct replica executes the same (client, timestamp)
// twice. A correct replica executes only timestamps above the client's
// last, so per (replica, client) the checker keeps the last timestamp
// executed: a repeat ("again") or a lower one is a violation. Restored
// forgets a replica's timestamps executed above the restored seq (it will
// execute them again, legitimately).
//
// pbft_validity: every request a correct replica executes was issued, with
// the operation issued (OpDigest), and the reply a client accepts equals
// the result of the first correct replica to execute the request (compared
// when both are known, whichever comes first).
//
// pbft_checkpoint: correct replicas report the same state digest at each
// checkpoint seq (first correct report recorded, later ones compared).
//
// pbft_liveness: after FaultEnded(t), a correct replica executes a batch
// (any, a null batch too) by t+T1 — if a request is pending at t; if none
// is, by T1 after the first Issued after t — and every request pending at t
// (issued, not yet both executed by a correct replica and accepted by its
// client) finishes by t+T2. Deadlines are evaluated at every call with a
// time and on Tick; an event after its deadline is a violation (each
// deadline at most once per fault window). FaultStarted ends the
// measurement (deadlines do not run during a fault). LastRecovery reports
// the measured times, also after a missed deadline.
//
// # What is caught, and the bounds
//
// A seq's record is dropped once it is more than Window below the stable
// checkpoint (seq + Window <= stable), or once every replica has executed
// at or past it — counting a Byzantine replica's progress as frozen at its
// last correct report, so a replica that turns correct again is still
// checked — or, lowest first, past MaxSeqs records (EvictedSeqs). A report
// at a dropped seq is counted Late and not checked for agreement (it is
// still checked for integrity and validity). So a divergent report is
// caught whatever the order of the reports, and also after Stable passed
// its seq, as long as it arrives while seq > stable - Window: a correct
// replica's reports are all checked if it never lags more than Window
// behind the stable checkpoint (and a replica that lags more catches up by
// state transfer, not by executing). Checkpoint records are dropped alike
// (Window below stable, reported by every replica, MaxSeqs).
//
// A request's record is created by Issued. After its first correct
// execution it is tied to that seq's record; it is forgotten once every
// correct replica executed it and the client accepted it, or once it is
// accepted and its seq was dropped. Otherwise (not executed yet, or not yet
// accepted when its seq was dropped) it sits in a FIFO of at most
// MaxPending records; past it the oldest is evicted (EvictedRequests).
// Per client the highest forgotten timestamp is kept: an execution or
// accepted reply of a request at or below it is counted Unverified, never
// a violation (a forgotten request cannot be told from a never-issued one
// at such a timestamp; integrity still catches a repeat). Clients are
// capped at MaxClients, least recently used evicted (EvictedClients); the
// highest forgotten timestamp of an evicted client widens Unverified for
// every client, so an eviction costs detection, never a false alarm.
//
// Memory: at most MaxSeqs seq records (each holding its first batch) and
// MaxSeqs checkpoint records — in steady state about (highest seq
// executed) - (stable - Window) of each; request records for the batches of
// the held seqs plus MaxPending; MaxClients clients of O(N) each; O(N) per
// replica. The liveness measurement holds nothing but counters (requests
// are tagged with the fault window they were pending at).
//
// Soundness: nothing dropped, late or evicted ever causes a violation —
// it only goes unchecked (the tests check, with tiny bounds, that every
// violation reported is one a whole-history checker reports too).
// Completeness: with the eviction counters and Late zero, the streaming
// verdict equals the whole-history checker's, violation by violation
// (TestOracle), for correct replicas that execute in seq order and accept
// replies while the request is held; a request executed again after it
// was forgotten (Unverified) has its op and result unchecked, integrity
// still applies.
package pbftcheck
