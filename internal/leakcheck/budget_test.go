package leakcheck

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
)

// budgetRuns replays runs series of length per, each growing at exactly the
// threshold (the worst case of an alert's null: "not faster than the
// threshold") under gaussian noise, through the default windows with their
// confidences derived from a budget of alarms per per, and returns the
// false alarms per run and the share of runs with any.
func budgetRuns(tb testing.TB, alarms float64, per time.Duration, runs int) (perRun, runsWith float64) {
	lc := config.Default().LeakCheck
	lc.Confidence = 0
	lc.FalseAlarmBudget = config.FalseAlarmBudget{Alarms: alarms, Per: config.Duration(per)}
	var mu sync.Mutex
	var total, with int
	inParallel(runs, 5000, func(seed uint64) {
		s := synthSignal{base: 50 * mib, noise: noiseModel{sd: mib}, shape: linearGrowth(heapThr), end: per,
			interval: lc.Interval.Std()}.samples(seed)
		fired, _ := replayWindows(newWindowSet(tb, SignalHeap, heapThr, lc), s, tEpoch)
		mu.Lock()
		defer mu.Unlock()
		total += len(fired)
		if len(fired) > 0 {
			with++
		}
	})
	return float64(total) / float64(runs), float64(with) / float64(runs)
}

// The false alarms the derived confidences allow stay within the budget
// they were derived from, even for a signal growing at exactly the
// threshold: the budget is a bound, and this measures how loose it is.
// (A series that does not grow at all sits far inside the null and raises
// nothing: TestWindowsQuietOnClean72h, BenchmarkFalseAlarms.)
func TestFalseAlarmBudgetHolds(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 12 runs of 6 hours (4 under the race detector)")
	}
	const budget = 1.0 // false alarms per 6 h: large, so that a few runs can see it
	runs := 12
	if raceEnabled {
		runs = 4
	}
	perRun, with := budgetRuns(t, budget, 6*time.Hour, runs)
	t.Logf("budget %g false alarms per 6h at exactly the threshold: %.2f per run, %.0f%% of runs with any", budget, perRun, 100*with)
	if perRun > budget {
		t.Errorf("%.2f false alarms per run, over the budget of %g", perRun, budget)
	}
}

// BenchmarkFalseAlarmBudget measures, for budgets of 0.01 to 1 false
// alarms per 72 hours, the false alarms per run (alarms_per_run_<budget>)
// and the share of runs with any, on SOAKD_FAR_RUNS (default 100) runs of
// 72 hours growing at exactly the threshold: each must be at most its
// budget.
func BenchmarkFalseAlarmBudget(b *testing.B) {
	runs := farRuns()
	for b.Loop() {
		for _, budget := range []float64{0.01, 0.1, 1} {
			perRun, with := budgetRuns(b, budget, 72*time.Hour, runs)
			b.ReportMetric(perRun, fmt.Sprintf("alarms_per_run_%g", budget))
			b.ReportMetric(with, fmt.Sprintf("share_of_runs_with_any_%g", budget))
		}
	}
}
