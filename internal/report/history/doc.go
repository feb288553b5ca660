// Package history owns the bounded, downsampled time series of a soak run
// that the run report plots: leak signals, op outcomes and latency, load
// target against achieved, faults, checks and violations, migration
// downtime, PBFT view changes. It samples soakd's own Prometheus registry,
// so every figure is one the run exported.
//
// History is the pure core (no clock, goroutine or file): Observe folds one
// gather, at the run's elapsed soak time (so incarnations line up), into
// the step it falls in. Gauges keep min, max, sum, count and last; counters
// and histograms keep increases, with a drop read as a reset and, after
// Restarted, a series' first value read as all increase. Save and Load
// (file.go, load.go) persist it atomically as a versioned, zstd-compressed file;
// Recorder (recorder.go) is the shell that gathers every Interval, saves
// every SaveEvery and on Stop, and hands /report a copy.
//
// The bound. Every series holds at most MaxPoints points (default 1024):
// when the run outgrows MaxPoints steps, the step doubles and adjacent
// points merge in every series, so any run length fits at one uniform
// resolution (72 hours from 10 s: 320 s steps, 811 points). At most
// MaxSeries series (default 256) of at most MaxBuckets (32) buckets and
// keys of at most 512 bytes; a sample that would pass a limit is dropped
// and counted (Dropped), never stored. Memory is therefore at most
// Options.MaxBytes, 72,888,320 bytes with the defaults (all 256 series
// full-width histograms); the default selection of a 72-hour run, 91
// series, holds 4.1 MB. The file is at most Options.MaxFileBytes
// (uncompressed worst case, which Load enforces); a 72-hour run of the
// default selection saves to about 740 KB and the test holds it under
// 1 MiB. The incarnation list keeps at most 1024 entries.
//
// It is a room of its own, under report, because the daemon records while
// the report only reads: it imports client_golang and client_model,
// clockwork, klauspost/compress (zstd), fsutil and tick; not run, not
// leakcheck, not the report.
package history
