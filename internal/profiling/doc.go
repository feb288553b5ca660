// Package profiling owns soakd's continuous profiling: the pyroscope-go
// client that pushes CPU, heap and goroutine profiles to a Pyroscope server,
// and the local pprof snapshot ring, a size-bounded directory of heap, allocs,
// goroutine (and, when the runtime has it, goroutineleak) profiles written
// every profiling.snapshots.interval under <state-dir>/profiles. And the
// stage CPU sample: a short CPU profile every profiling.stage_cpu.interval,
// summed by the pprof stage label, which says what the harness costs next
// to the components (StageCPU, soakd_cpu_cores).
//
// It also provides Do, the one way components label their goroutines
// (component=<name>) so both the pushed profiles and the local goroutine
// profiles attribute work and leaks to a component.
//
// It imports config and nothing else of soakd's internals; the run owns the
// Profiler's lifecycle and leakcheck calls SnapshotNow when an alert fires.
package profiling
