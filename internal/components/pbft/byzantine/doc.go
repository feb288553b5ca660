// Package byzantine is protocol-level Byzantine behaviour for a PBFT
// replica: pure, seeded transformers of the messages a replica sends. The
// shell routes each outgoing message of a Byzantine replica, one Out per
// receiver (a broadcast expanded), through its Behavior before it
// authenticates and sends what comes out. A Behavior draws its choices
// from a math/rand/v2 PCG seeded with (seed, self), so the same seed and
// the same messages give the same output; its state is bounded.
//
// Parameters are strings (from YAML): a share or rate is a fraction
// ("0.2") or a percentage ("20%"); kinds is a comma-separated list of
// kind names as protocol.Kind prints them ("prepare,commit").
//
// What each behaviour does on the wire:
//
//   - equivocate [share, default 50%]: as primary (a pre-prepare From
//     self), sends a share of the backups (drawn per (view, seq); at
//     least one and not all) another batch for the same (view, seq) — one
//     request dropped, two swapped or one op altered — with that batch's
//     correct digest; its own prepares and commits carry, to each backup,
//     the digest that backup was pre-prepared (the last 256 seqs kept).
//     The pre-prepares inside its new-view messages are left alone.
//   - mutate [share, default 50%; kinds, default all]: to a random share
//     of receivers, changes one field (ByzzFuzz small-scope): view ±1,
//     seq ±1, the digest swapped for one of the 16 last seen (or a random
//     one), or one request's op byte; nothing else is fixed up, so a
//     pre-prepare with an altered op no longer matches its digest.
//   - forge [share, default 100%; kinds, default all]: sends messages to a
//     share of receivers with Forge set: the shell garbles their MAC or
//     signature.
//   - replay [rate, default 0.2]: sends everything, and after a rate share
//     of sends also re-sends to the same receiver one of the 256 previous
//     messages, chosen at random (the shell authenticates it anew).
//   - silent [kinds, default all]: sends nothing, or nothing of kinds.
//   - lie-view-change [mode: stale|forge, default forge]: rewrites its own
//     view-change messages: stale drops every Prepared entry (claims
//     nothing prepared); forge claims a random digest prepared and
//     pre-prepared in the view before the new one, over a genuine entry's
//     or at the sequence number after them all (no batch for it).
//   - twin: passes everything through; the shell runs the twin, a second
//     instance of the replica with the same identity and keys (IsTwin).
//
// equivocate and lie-view-change rewrite only messages From self; mutate,
// forge, replay and silent act on every message they are given.
package byzantine
