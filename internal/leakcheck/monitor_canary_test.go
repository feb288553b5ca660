package leakcheck

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/alert"
)

// canaryRig is a monitor on the test signals with a fake clock, keeping
// what it notifies, restores and journals.
type canaryRig struct {
	m     *Monitor
	sig   *testSignals
	clock *clockwork.FakeClock
	reg   *prometheus.Registry

	mu       sync.Mutex
	notified []alert.Alert
	restored []alert.Alert
	events   []string
}

func newCanaryRig(t *testing.T, state string, at time.Time) *canaryRig {
	t.Helper()
	r := &canaryRig{clock: clockwork.NewFakeClockAt(at), reg: prometheus.NewRegistry()}
	r.m, r.sig = newTestMonitor(t, MonitorOptions{Clock: r.clock, Metrics: r.reg, StatePath: state, RunID: "run-1",
		Notify:  func(a alert.Alert) { r.mu.Lock(); r.notified = append(r.notified, a); r.mu.Unlock() },
		Restore: func(a alert.Alert) { r.mu.Lock(); r.restored = append(r.restored, a); r.mu.Unlock() },
		Event:   func(typ string, _ map[string]any) { r.mu.Lock(); r.events = append(r.events, typ); r.mu.Unlock() }})
	if err := r.m.Start(context.Background()); err != nil { // restores the state file
		t.Fatal(err)
	}
	// The test ticks by hand: stop the background ticker, which the fake
	// clock's advances would otherwise fire too.
	if err := r.m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *canaryRig) tick(n int) {
	for range n {
		r.clock.Advance(testInterval)
		r.m.Tick(r.clock.Now())
	}
}

// firing is the last notification of each alert key that is firing.
func (r *canaryRig) firing() map[string]alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]alert.Alert{}
	for _, a := range r.notified {
		if a.Firing() {
			out[a.Name+"/"+a.Labels["signal"]] = a
		} else {
			delete(out, a.Name+"/"+a.Labels["signal"])
		}
	}
	return out
}

func (r *canaryRig) journaled(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == typ {
			n++
		}
	}
	return n
}

// A canary's alert says it is the canary's: canary="true", severity info,
// the fault's id, a summary that says it is expected; and it counts as the
// alert path proven, not as a leak.
func TestCanaryAlertIsLabelledAsTheCanarys(t *testing.T) {
	r := newCanaryRig(t, "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r.tick(25) // a full window of flat data
	r.m.CanaryStarted(Canary{ID: "leak-1", Resource: "goroutines", Rate: "60/min", PerSecond: 1, Shape: "linear"})
	r.sig.slope = 15 // 60/min, threshold 10/min
	for i := 0; i < 40 && len(r.firing()) == 0; i++ {
		r.tick(1)
	}
	a, ok := r.firing()["SoakdGoroutineLeak/goroutines"]
	if !ok {
		t.Fatalf("no goroutine alert during the canary: %v", r.firing())
	}
	if a.Labels["canary"] != "true" || a.Labels["severity"] != "info" || a.Annotations["canary_fault"] != "leak-1" {
		t.Fatalf("canary alert labels %v annotations %v", a.Labels, a.Annotations)
	}
	t.Logf("summary: %s", a.Annotations["summary"])
	if f := r.m.Firing(); len(f) != 1 || f[0].Canary != "leak-1" {
		t.Fatalf("Firing() = %+v, want the canary's alert", f)
	}
	if n := testutil.ToFloat64(r.m.canaryDetected.WithLabelValues(SignalGoroutines)); n != 1 {
		t.Fatalf("soakd_leak_canary_detected_total = %v, want 1", n)
	}
	if v := testutil.ToFloat64(r.m.canaryFiring.WithLabelValues(SignalGoroutines)); v != 1 {
		t.Fatalf("soakd_leak_canary_firing = %v, want 1", v)
	}
	if d := testutil.ToFloat64(r.m.canaryDetection.WithLabelValues(SignalGoroutines)); d <= 0 || d > 10*60 {
		t.Fatalf("detection time %vs", d)
	}
	if r.journaled(EventLeakCanaryDetected) != 1 {
		t.Fatal("the detection is not journaled")
	}
	c := r.m.Canaries()
	if len(c) != 1 || c[0].DetectedAt.IsZero() {
		t.Fatalf("Canaries() = %+v", c)
	}
}

// A leak on another signal during a canary is a real, critical alert.
func TestLeakDuringAnotherSignalsCanaryIsReal(t *testing.T) {
	r := newCanaryRig(t, "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r.tick(25)
	r.m.CanaryStarted(Canary{ID: "leak-heap", Resource: "heap", Rate: "2MiB/min", Shape: "linear"})
	if v := testutil.ToFloat64(r.m.canaryActive.WithLabelValues(SignalHeap)); v != 1 {
		t.Fatalf("soakd_leak_canary_active{heap} = %v, want 1", v)
	}
	r.sig.slope = 15
	for i := 0; i < 40 && len(r.firing()) == 0; i++ {
		r.tick(1)
	}
	a, ok := r.firing()["SoakdGoroutineLeak/goroutines"]
	if !ok {
		t.Fatalf("no goroutine alert: %v", r.firing())
	}
	if a.Labels["canary"] != "" || a.Labels["severity"] != "critical" || a.Annotations["canary_fault"] != "" {
		t.Fatalf("a real leak during a heap canary: labels %v annotations %v", a.Labels, a.Annotations)
	}
	if v := testutil.ToFloat64(r.m.canaryFiring.WithLabelValues(SignalGoroutines)); v != 0 {
		t.Fatalf("soakd_leak_canary_firing{goroutines} = %v, want 0", v)
	}
}

// A canary that ends and settles unseen raises SoakdCanaryMissed, a real
// critical alert; it survives a restart (re-sent, not paged again), a
// later detected canary resolves it, and it is raised once per canary.
func TestMissedCanaryAlertsAndSurvivesRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "leak-alerts.json")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newCanaryRig(t, state, t0)
	r.tick(25)
	// Below the threshold: nothing can fire on it.
	r.m.CanaryStarted(Canary{ID: "quiet", Resource: "goroutines", Rate: "2/min", PerSecond: 2.0 / 60, Shape: "linear"})
	r.tick(20)
	r.m.CanaryEnded("quiet")
	r.tick(19) // 4m45s: within the 5-minute settle
	if len(r.firing()) != 0 {
		t.Fatalf("alert before the canary settled: %v", r.firing())
	}
	r.tick(2)
	a, ok := r.firing()[AlertCanaryMissed+"/goroutines"]
	if !ok {
		t.Fatalf("no SoakdCanaryMissed: %v", r.firing())
	}
	if a.Labels["severity"] != "critical" || a.Labels["canary"] != "" || a.Annotations["canary_fault"] != "quiet" {
		t.Fatalf("missed alert labels %v annotations %v", a.Labels, a.Annotations)
	}
	t.Logf("description: %s", a.Annotations["description"])
	r.tick(40)
	if n := testutil.ToFloat64(r.m.canaryMissed.WithLabelValues(SignalGoroutines)); n != 1 {
		t.Fatalf("soakd_leak_canary_missed_total = %v, want 1 (once per canary)", n)
	}
	if r.journaled(EventLeakCanaryMissed) != 1 {
		t.Fatal("the miss is not journaled once")
	}
	// The next incarnation takes it over, firing.
	r2 := newCanaryRig(t, state, r.clock.Now().Add(time.Minute))
	if len(r2.restored) != 1 || r2.restored[0].Name != AlertCanaryMissed || !r2.restored[0].Firing() {
		t.Fatalf("restored %+v, want the firing SoakdCanaryMissed", r2.restored)
	}
	if v := testutil.ToFloat64(r2.m.canaryMissedOn.WithLabelValues(SignalGoroutines)); v != 1 {
		t.Fatalf("soakd_leak_canary_missed = %v after restart, want 1", v)
	}
	if c := r2.m.Canaries(); len(c) != 1 || !c[0].Missed {
		t.Fatalf("canaries after restart: %+v", c)
	}
	// A later canary that is detected resolves it.
	r2.tick(25)
	r2.m.CanaryStarted(Canary{ID: "loud", Resource: "goroutines", Rate: "60/min", PerSecond: 1, Shape: "linear"})
	r2.sig.slope = 15
	for i := 0; i < 40 && r2.firing()["SoakdGoroutineLeak/goroutines"].Name == ""; i++ {
		r2.tick(1)
	}
	var resolved bool
	for _, a := range r2.notified {
		resolved = resolved || (a.Name == AlertCanaryMissed && !a.Firing())
	}
	if !resolved || testutil.ToFloat64(r2.m.canaryMissedOn.WithLabelValues(SignalGoroutines)) != 0 {
		t.Fatal("a detected canary did not resolve SoakdCanaryMissed")
	}
}
