//go:build race

package leakcheck

// raceEnabled: the race detector slows the single-goroutine simulations
// fivefold, and they have no concurrency for it to check.
const raceEnabled = true
