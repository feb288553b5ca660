// Package check owns soakd's correctness checkers over bounded windows of
// history: today the porcupine linearizability checker for key-value
// components (raft); PBFT agreement and migration byte-exactness belong here
// too. It imports components (for Outcome) and nothing else of soakd's
// internals; components record ops into a checker, run wires its metrics,
// events and evidence directory.
//
// Files: linearizability.go is the windowing shell (buffer, loop, locks,
// results); cut.go picks each key's cut; history.go is the pure algorithm of
// one key-window; carry.go the per-key state carried between windows;
// model.go the porcupine model; evidence.go and metrics.go the I/O. The KV
// op type is components.KVOp: a component implementing
// components.KVHistory gets the checker as its recorder.
//
// # Linearizability: model
//
// Each key is a register checked on its own (the history is partitioned by
// key; a KV store is linearizable iff every key is). The porcupine model's
// state is the SET of values the register may hold (absent is a value), so
// the model is nondeterministic in a deterministic shell: for one
// linearization order the set is exact. get -> v needs v in the set and
// collapses it to {v}; put v gives {v}; a swapped cas needs Expect in the set
// and gives {new}; a not-swapped cas needs some value other than Expect and
// removes Expect. "Any value" (top) is a set too: the state of a key the
// checker knows nothing about.
//
// Outcomes. ok ops are ordinary operations. failed ops were definitely not
// applied and are left out, so a later read of a failed put's value is
// illegal. unknown ops may or may not have been applied, now or later: an
// unknown put/cas becomes an optional write whose Return is +infinity (it may
// take effect at any point after its call) and whose output is unconstrained;
// its step is S -> S ∪ {v} (for cas only if Expect is in S), the union of
// "applied here" and "not applied". An unknown get is left out (reads change
// nothing). After its window an unknown write stays pending for UnknownTTL
// from its call: every later window's model closes the state set under the
// pending writes after every step (it may land at any moment). An
// acknowledged write is never optional, so a lost acknowledged write is still
// caught: once its put is linearized, only a later write can change the
// value, and an unknown write only widens the set to {old, unknown value} —
// a read of any other value, or of the overwritten value after the unknown
// write can no longer land, is illegal. An unknown op that takes effect more
// than UnknownTTL after its call breaks that assumption and can cause a
// false alarm: set UnknownTTL above the component's longest commit delay.
//
// # Windows and carry-over
//
// The background loop checks the history up to T = now - MaxOpDuration
// every Window, so every op called before T has returned and been recorded
// (MaxOpDuration is the components' op timeout plus slack; an op that
// overruns it is counted late). Each key is cut at its own latest quiescent
// moment t ≤ T: a moment when none of its acknowledged ops is in flight
// (no op with Call ≤ t < Return). Every op of the key that returned by t
// then precedes, in real time, every op called after t, so checking the
// prefix and carrying its exact set of end states loses nothing: the
// windowed verdict equals the verdict on the whole history (a property test
// checks this against an independent whole-history oracle). A key busy at
// every moment since its last cut waits for a later check, its ops
// buffered; one busy for MaxKeyLag (default Window), or busy when the
// buffer fills, is cut at T anyway (a forced cut, counted in
// soakd_check_forced_cuts_total: under pressure a cut loses less than
// dropping ops), and only there:
//
//   - writes in flight at the cut are optional with Return +infinity in
//     the window before it, and optional with their real interval in the
//     window after it (they may already have applied);
//   - reads (and not-swapped cas) in flight at the cut are left out.
//
// A forced cut trades completeness (a lost write that straddles it can be
// missed), never soundness. At realistic rates keys rest between ops
// almost always; at 2,000 ops/s on the real Raft cluster none is forced.
// Unknown ops do not hold a key's cut back: they are optional whichever
// window holds them and stay pending afterwards.
//
// The initial state set is the set carried from the previous window. After
// a legal window the checker computes the set of possible end states
// exactly, by probing: for each candidate value v it re-checks the window
// plus a synthetic read at the very end that succeeds iff the register may
// hold v there. Candidates are the initial values (if no mandatory write) and
// the values written or read by ops not followed in real time by a mandatory
// write; a probe for top comes first when the set may be top. The set of
// values whose probe is linearizable is carried into the next window as its
// possible initial states, so a write lost or reordered across a boundary is
// caught in the next window.
//
// Soundness (never illegal for a linearizable history): the carried set
// contains the register's real value at every cut, by induction — each op
// whose linearization point falls in (P, T] is in the window, mandatory or
// optional, and every op that may have taken effect in an earlier window is
// optional here. Whenever the checker cannot compute the set — porcupine
// timed out, an op was dropped (buffer full) or arrived late (called before a
// cut already checked), more than MaxPendingPerKey unknown writes, more than
// MaxKeys keys — the key's state becomes top (and, for dropped writes, the key
// is reported unknown until the op can no longer take effect): it can miss a
// fault, never invent one. The one exception is the recording contract
// itself: a write recorded more than MaxOpDuration after its call (counted
// as late) may have been observed by reads in a window already judged, so
// such a window can be illegal though the history is not. MaxOpDuration is
// the op timeout plus slack so that this needs a component that overran its
// own timeout; a violation next to late drops deserves that suspicion.
// CheckNow likewise judges what has been recorded: call it on a quiet
// history. A porcupine timeout is reported unknown, never
// illegal; so is a verdict that leaned on a set widened past MaxStates.
//
// Completeness trade-off: ops in flight at a forced cut are checked only as
// optional writes or not at all (reads), and a pending unknown write may
// "apply" more than once in the model.
// After an illegal window the key's state is reset to top, so one fault is
// reported once, not in every later window.
//
// # Bounds
//
// At most MaxOps ops are held (buffered plus being checked; sized from the
// expected Rate to twice Window+MaxOpDuration of ops, capped at
// MaxBufferOps); Record drops and counts (soakd_check_dropped_ops_total
// {reason}) past it, and never waits for a check. When half the free space
// left by the last check is used (and at least MaxOps/8 ops have arrived)
// the loop checks early, so early checks cost a bounded scan per op. Per key the checker carries at most MaxStates values
// and MaxPendingPerKey pending writes; at most MaxKeys keys; at most
// EvidenceKeep HTML files per component.
//
// # Metrics
//
// soakd_checks_total{component,checker="linearizability",result} counts one
// check per key per window; soakd_invariant_violations_total{component,
// invariant="linearizability"}; soakd_check_dropped_ops_total{component,
// checker,reason}; soakd_check_buffered_ops{component,checker};
// soakd_check_windows_total{component,checker,trigger} (ticker, pressure,
// stop, call); soakd_check_window_seconds{component,checker}, the history
// the last window closed; soakd_check_forced_cuts_total{component,checker}.
//
// Porcupine gets times as offsets from a clock reading taken at start, so
// with a real clock they are monotonic: a wall-clock step cannot reorder
// two ops.
package check
