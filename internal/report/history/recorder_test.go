package history

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
)

type recorderRig struct {
	reg   *prometheus.Registry
	ops   *prometheus.CounterVec
	fault *prometheus.GaugeVec
}

// newRig is one soakd process's registry.
func newRig() *recorderRig {
	r := &recorderRig{reg: prometheus.NewRegistry(),
		ops:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "soakd_ops_total", Help: "ops"}, []string{"component", "op", "outcome"}),
		fault: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "soakd_faults_active", Help: "faults"}, []string{"kind"})}
	r.reg.MustRegister(r.ops, r.fault)
	return r
}

// advance moves the fake clock one interval and waits for the tick it fires.
func advance(t *testing.T, rec *Recorder, clock *clockwork.FakeClock, d time.Duration) {
	t.Helper()
	clock.Advance(d)
	select {
	case <-rec.ticks:
	case <-time.After(10 * time.Second):
		t.Fatal("no tick after advancing the clock")
	}
}

func counterPoints(t *testing.T, h *History, name string) map[time.Duration]float64 {
	t.Helper()
	out := map[time.Duration]float64{}
	for _, s := range h.Series() {
		if s.Key.Name == name {
			for _, p := range s.Points {
				out[p.Start] += p.Increase
			}
		}
	}
	return out
}

func TestRecorder(t *testing.T) {
	clock := clockwork.NewFakeClock()
	start := clock.Now()
	elapsed := func() time.Duration { return clock.Since(start) }
	path := filepath.Join(t.TempDir(), "history")
	rig := newRig()
	ok := rig.ops.WithLabelValues("raft", "put", "ok")
	ok.Add(1000) // before the recorder: a baseline, not this history's
	rig.fault.WithLabelValues("partition").Set(1)

	opts := RecorderOptions{Gatherer: rig.reg, Path: path, Clock: clock, Elapsed: elapsed,
		Interval: 10 * time.Second, SaveEvery: time.Minute}
	rec, err := NewRecorder(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-rec.ticks // Start's own sample
	for i := range 5 {
		ok.Add(10)
		advance(t, rec, clock, 10*time.Second)
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after %ds: file written before SaveEvery: %v", 10*(i+1), err)
		}
	}
	ok.Add(10)
	advance(t, rec, clock, 10*time.Second) // 60 s: the save is due
	saved, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[time.Duration]float64{0: 0, 10 * time.Second: 10, 20 * time.Second: 10, 30 * time.Second: 10,
		40 * time.Second: 10, 50 * time.Second: 10, 60 * time.Second: 10}
	if got := counterPoints(t, saved, "soakd_ops_total"); !reflect.DeepEqual(got, want) {
		t.Fatalf("saved at 60s: %v, want %v", got, want)
	}
	ok.Add(5)
	advance(t, rec, clock, 10*time.Second)
	if got := counterPoints(t, rec.History(), "soakd_ops_total")[70*time.Second]; got != 5 {
		t.Errorf("History() at 70s: +%v, want +5", got)
	}
	ok.Add(7) // between ticks: Stop's last sample catches it
	clock.Advance(time.Second)
	if err := rec.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopped, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want[70*time.Second] = 12
	if got := counterPoints(t, stopped, "soakd_ops_total"); !reflect.DeepEqual(got, want) {
		t.Fatalf("saved at Stop: %v, want %v", got, want)
	}

	// The next incarnation: a new process whose counter starts at zero,
	// with the run's elapsed time carried on.
	rig = newRig()
	rig.ops.WithLabelValues("raft", "put", "ok").Add(3)
	resumedAt := elapsed()
	opts.Gatherer = rig.reg
	rec, err = NewRecorder(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-rec.ticks
	advance(t, rec, clock, 10*time.Second)
	if err := rec.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := rec.History()
	if got := counterPoints(t, h, "soakd_ops_total")[70*time.Second]; got != 12+3 {
		t.Errorf("after the resume, 70s holds +%v, want +15 (12, then 3 counted since the restart)", got)
	}
	if got := h.Incarnations(); !reflect.DeepEqual(got, []time.Duration{0, resumedAt}) {
		t.Errorf("incarnations %v, want [0s %v]", got, resumedAt)
	}
	for _, s := range h.Series() {
		if s.Key.Name == "soakd_faults_active" && s.Points[0].Last != 1 {
			t.Errorf("gauge %+v", s.Points[0])
		}
	}
}

// TestRecorderBadFile: a corrupt history is an error at NewRecorder, and
// the file is left as it was.
func TestRecorderBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewRecorder(RecorderOptions{Gatherer: prometheus.NewRegistry(), Path: path})
	if err == nil {
		t.Fatal("NewRecorder accepted a corrupt file")
	}
	if data, _ := os.ReadFile(path); string(data) != "garbage\n" {
		t.Errorf("file changed: %q", data)
	}
}

// TestRecorderStopUnstarted saves what it has; Stop of a stopped one is
// harmless.
func TestRecorderStopUnstarted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history")
	rec, err := NewRecorder(RecorderOptions{Gatherer: prometheus.NewRegistry(), Path: path, Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rec.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rec.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, Options{}); err != nil {
		t.Fatal(err)
	}
}
