// Package load is the open-loop load engine: for each component it draws a
// seeded arrival schedule (Poisson or uniform, with a ramp-up and an
// optional daily swing on the run's elapsed time), an operation mix and
// keys, and starts each operation at its intended time whether or not
// earlier ones have returned. Concurrency is capped per component; an
// arrival over the cap is dropped and counted, never queued. Latency is
// measured from the intended start (no coordinated omission) into
// fixed-memory histograms.
//
// load imports components and config; it never imports faults or
// leakcheck.
package load
