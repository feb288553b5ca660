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
//   - owner.go: owner records (host, generation) in a key-value
//     component (components.migration.ownership: raft) through its put,
//     get and cas, so the run's linearizability checker sees every flip;
//     the claim a switch-over makes before the destination resumes, and
//     its release when the destination did not resume. An unknown answer
//     is resolved by reads through the log before anything resumes.
//   - ownership.go: loading the records at start (a new run writes
//     them), the in-flight records that let the next incarnation journal
//     what a kill -9 interrupted (migration_recovered), and the audit of
//     every guest against the books (migration_placement) and its record
//     (migration_ownership) after every migration, every fault and every
//     minute.
//   - hostnode.go: the hostNode seam the Cluster drives, and localHost, a
//     Host in this process.
//   - hostproc.go: HostProcess, one host as a `soakd node --component
//     migration` process: guests installed and migrations run over its
//     HTTP API, owner-record questions asked back on the migration's
//     answer stream.
//   - procs.go: procHost, the Cluster's side of a host process
//     (components.migration.host_mode processes): spawned on a fixed
//     address, crashed with SIGKILL.
//   - component.go, do.go, metrics.go: the Component (hosts as Nodes,
//     targets link, host, source, destination, host-N), migrate, metrics
//     and journal events.
//
// A host crash fails its migrations in both directions and loses its
// guests with their memory; on restart the host gets back the guests whose
// records name it, recreated from the seed and their generation (so a
// replay recreates the same bytes). A restart of soakd does the same for
// every host: the records, not the process, say where each guest runs.
package migration
