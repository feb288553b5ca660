// Package migration is the live-migration component: hosts on loopback,
// each with a listener, and guests spread over them whose memory lives
// outside the Go heap (anonymous mmap) and is dirtied by a workload
// through the engine's own dirty bitmap. Operation "migrate" moves a guest
// to another host by pre-copy over several TCP streams opened through the
// component's Dialer (so every network fault applies), and verifies every
// migration byte for byte.
//
// Rooms:
//   - guest.go, bitmap.go, mem.go: a guest's memory, content, workload
//     (QEMU's migration-test invariant: the sequential workload increments
//     byte 0 of each hot page in order, so a paused guest's hot pages are
//     all equal but for one edge) and heartbeat.
//   - wire.go: frames and page entries (zero markers, raw pages, XBZRLE
//     deltas against the source's bounded cache, package xbzrle), page
//     batches compressed per batch (package codec: none, s2, lz4, zstd).
//   - converge.go: the pure convergence rule: bandwidth forecast from
//     recent rounds and the link's history, predicted downtime against
//     downtime_limit, auto-converge throttle, progress and completion
//     timeouts with cancel or force.
//   - source.go, switchover.go: the source's rounds and switch-over; any
//     failure before the commit leaves the guest running on its source,
//     unchanged; a lost answer to the commit is resolved out of band.
//   - dest.go, host.go: a host's listener, the incoming side (apply,
//     verify, adopt and resume), crash and restart.
//   - verify.go: per-page hashes kept as pages are sent and applied,
//     compared at switch-over (corruption: the guest stays home), and the
//     source's frozen memory hashed after the resume (a write the bitmap
//     missed).
//   - placement/: the pure placement core: a destination is up, has room
//     and breaks no anti-affinity rule, and is scored by balance, link
//     bandwidth (measured by earlier migrations) and affinity.
//   - component.go, do.go, metrics.go: the Component (hosts as Nodes,
//     targets link, host, source, destination, host-N), migrate, the
//     placement invariant (a guest runs on exactly one host, the recorded
//     one), metrics and journal events.
//
// A host crash fails its migrations in both directions and stops its
// guests, which keep their memory and state and resume on restart: the
// harness soaks the migration path, not guest durability.
package migration
