// Package leakcheck owns samplers, robust trend detectors, the alert state
// machine and evidence capture; it imports config and alert (the alert
// type it hands to the sinks), not run; nothing imports it but daemon and
// the fault kinds that name the signals they disturb.
//
// The detection core is pure and deterministic: Ring keeps a bounded window
// of Samples, Estimator computes Theil–Sen slopes, Sen's confidence bounds
// and the Mann–Kendall test, Detector turns a window into an Evaluation, and
// AlertFSM turns evaluations into Inactive/Pending/Firing. None of them reads
// a clock or starts a goroutine: every time is an argument, so a 72-hour run
// is simulated in about half a second (a few seconds under -race). Estimator
// lives in trend.go, one file per part (trend_*.go; trend.go lists them).
// The detector's scenarios are datadriven files in testdata, where a series
// a soak found can be kept as a regression (testdata/README.md).
//
// Each signal is also judged over leakcheck.windows (windows.go): one
// extra Detector and Ring per window, with its own bar (Factor) and
// confidence, downsampled past maxWindowSamples; decide combines the
// verdicts (any window's suspect fires, only the main window clears).
//
// The shell around it: Sampler reads runtime/metrics and procfs; Monitor
// samples every leakcheck.interval, feeds the detectors, and on a firing
// alert captures an evidence bundle (heap diff against a baseline profile
// from the window's start, goroutines by stack and by component label, the
// goroutineleak profile where the runtime has it) and notifies the sinks.
// Monitor keeps its alerts in a state file, so the next incarnation re-adopts
// the ones still firing or resolves them. ResidueTracker measures what each
// fault kind leaves behind, from readings after warm-up only, at quiet
// moments (no other fault in force or settling). A fault that moves a
// signal on purpose marks it disturbed (Monitor.Disturb, Settle): its
// samples stay out of the window until the fault has settled. The
// open-fds signal subtracts the descriptors faults hold (package offheap).
//
// Leak canaries (canary.go, a pure core, and monitor_canary.go): the
// daemon tells the Monitor of each "leak" fault (CanaryStarted, Ended). An
// alert on a signal a canary drives, while it is in force or within
// leakcheck.window of its end, is the canary's: canary="true", severity
// info, the fault's id; it counts as the alert path proven. A canary that
// expected an alert and settled without one raises SoakdCanaryMissed, a
// real critical alert. The canaries are kept in the alert state file.
//
// Node processes (monitor_nodes.go, target.go): MonitorOptions.Targets
// lists processes soaked beside soakd (a component's node processes,
// leakcheck.targets). Each is sampled over its net/http/pprof handlers
// (post-GC heap, goroutines) and procfs where local, or its /metrics where
// not; its RSS leaves out what it reports as OffheapResidentMetric (a
// migration host's guests), as soakd's own leaves out package offheap's;
// judged by the same windows and state machine; and alerted with the
// labels node and component, evidence from its own profiles. A new pid (or
// start time) is a restart: the node's windows start again, its alert
// stays until they judge it.
package leakcheck
