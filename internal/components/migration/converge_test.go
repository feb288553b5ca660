package migration

import (
	"testing"
	"time"
)

// simulate runs the rule against a synthetic guest: bw bytes/s of wire
// bandwidth, a guest dirtying dirty bytes/s over hot pages, and returns the
// rounds until switch-over or cancel, the final decision and the throttle.
func simulate(t *testing.T, p Policy, guestPages, hotPages int, bw, dirty float64) (int, Decision) {
	t.Helper()
	pl := NewPlanner(p, 0)
	pending := guestPages
	elapsed := time.Duration(0)
	throttle := 0.0
	for n := 0; n < 1000; n++ {
		took := time.Duration(float64(pending*PageSize) / bw * float64(time.Second))
		elapsed += took
		// The guest dirties during the round, bounded by its hot set.
		dirtied := min(hotPages, int(dirty*(1-throttle)*took.Seconds()/PageSize))
		r := Round{N: n, Pages: pending, RawBytes: int64(pending) * PageSize, WireBytes: int64(pending) * PageSize, Took: took, Dirtied: dirtied}
		d := pl.Next(r, dirtied, elapsed)
		throttle = d.Throttle
		if d.Action != Continue {
			return n + 1, d
		}
		pending = max(dirtied, 1)
	}
	t.Fatal("no decision in 1000 rounds")
	return 0, Decision{}
}

func TestConvergesBelowBandwidth(t *testing.T) {
	p := Policy{DowntimeLimit: 300 * time.Millisecond, ProgressTimeout: 30 * time.Second, CompletionTimeout: 10 * time.Minute}
	// 1 GiB guest, 100 MiB/s link, guest dirties 20 MiB/s over 64 MiB.
	n, d := simulate(t, p, 1<<18, 1<<14, 100<<20, 20<<20)
	if d.Action != SwitchOver || d.Rule != "downtime-fits" || d.Throttle != 0 {
		t.Fatalf("after %d rounds: %+v", n, d)
	}
	if d.PredictedDowntime > p.DowntimeLimit {
		t.Fatalf("switched over predicting %v > %v", d.PredictedDowntime, p.DowntimeLimit)
	}
}

func TestDoesNotConvergeAboveBandwidthWithoutThrottle(t *testing.T) {
	p := Policy{DowntimeLimit: 300 * time.Millisecond, ProgressTimeout: 30 * time.Second, CompletionTimeout: 10 * time.Minute}
	// Dirtying 200 MiB/s over 256 MiB against a 100 MiB/s link: the hot set
	// is always pending and never fits the limit.
	n, d := simulate(t, p, 1<<18, 1<<16, 100<<20, 200<<20)
	if d.Action != Cancel || d.Rule != "progress-timeout" {
		t.Fatalf("after %d rounds: %+v", n, d)
	}
	p.Force = true
	if _, d := simulate(t, p, 1<<18, 1<<16, 100<<20, 200<<20); d.Action != SwitchOver || d.Rule != "progress-timeout-force" {
		t.Fatalf("force: %+v", d)
	}
}

func TestAutoConvergeThrottlesUntilItFits(t *testing.T) {
	p := Policy{DowntimeLimit: 300 * time.Millisecond, AutoConverge: true, ProgressTimeout: 10 * time.Minute, CompletionTimeout: time.Hour}
	n, d := simulate(t, p, 1<<18, 1<<16, 100<<20, 200<<20)
	if d.Action != SwitchOver || d.Throttle < throttleInitial {
		t.Fatalf("after %d rounds: %+v", n, d)
	}
	t.Logf("converged after %d rounds at throttle %.0f%%, predicted downtime %v", n, 100*d.Throttle, d.PredictedDowntime)
}

func TestThrottleSteps(t *testing.T) {
	pl := NewPlanner(Policy{DowntimeLimit: time.Millisecond, AutoConverge: true}, 0)
	hot := Round{Pages: 100, RawBytes: 100 * PageSize, WireBytes: 100 * PageSize, Took: time.Second, Dirtied: 100}
	var got []float64
	for range 20 {
		got = append(got, pl.Next(hot, 100, 0).Throttle)
	}
	want := []float64{0, 0.2, 0.2, 0.3, 0.3, 0.4}
	for i, w := range want {
		if d := got[i] - w; d > 1e-9 || d < -1e-9 {
			t.Fatalf("throttle steps %v, want to start %v", got, want)
		}
	}
	if last := got[len(got)-1]; last > throttleMax {
		t.Fatalf("throttle %v above %v", last, throttleMax)
	}
}

// TestForecastLeansOnHistory: a first, tiny round does not swing the
// forecast away from the link's known bandwidth; a window of real data does.
func TestForecastLeansOnHistory(t *testing.T) {
	pl := NewPlanner(Policy{DowntimeLimit: time.Millisecond}, 100<<20)
	d := pl.Next(Round{Pages: 1, WireBytes: 4096, Took: time.Second}, 10, 0) // 4 KiB/s, a stall
	if d.PredictedBandwidth < 90<<20 {
		t.Fatalf("forecast %v after one tiny round, want near the prior", d.PredictedBandwidth)
	}
	for range predictorWindow {
		d = pl.Next(Round{Pages: 4096, WireBytes: 16 << 20, Took: time.Second}, 10, 0)
	}
	if d.PredictedBandwidth > 17<<20 || d.PredictedBandwidth < 15<<20 {
		t.Fatalf("forecast %v after a window at 16 MiB/s", d.PredictedBandwidth)
	}
}
