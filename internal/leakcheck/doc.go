// Package leakcheck owns samplers, robust trend detectors, the alert state
// machine and evidence capture; it imports config, run-independent; nothing
// imports it but daemon.
//
// The detection core is pure and deterministic: Ring keeps a bounded window
// of Samples, Estimator computes Theil–Sen slopes, Sen's confidence bounds
// and the Mann–Kendall test, Detector turns a window into an Evaluation, and
// AlertFSM turns evaluations into Inactive/Pending/Firing. None of them reads
// a clock or starts a goroutine: every time is an argument, so a 72-hour run
// is simulated in well under a second.
package leakcheck
