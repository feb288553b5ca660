package check_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
)

var base = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

const (
	ok     = components.OutcomeOK
	failed = components.OutcomeFailed
)

func put(c, call, ret int, key, v string, out components.Outcome) check.KVOp {
	return check.KVOp{ClientID: c, Call: at(call), Return: at(ret), Op: "put", Key: key, Value: []byte(v), Outcome: out}
}

func get(c, call, ret int, key, v string) check.KVOp {
	op := check.KVOp{ClientID: c, Call: at(call), Return: at(ret), Op: "get", Key: key, Outcome: ok}
	if v != "" {
		op.Output, op.Found = []byte(v), true
	}
	return op
}

type events struct{ got []map[string]any }

func (e *events) add(typ string, f map[string]any) {
	if typ != "invariant_violation" {
		panic(typ)
	}
	e.got = append(e.got, f)
}

func newChecker(t *testing.T, mod func(*check.LinearizabilityOptions)) (*check.Linearizability, *prometheus.Registry, *events) {
	t.Helper()
	reg := prometheus.NewRegistry()
	ev := &events{}
	o := check.LinearizabilityOptions{
		Component:     "raft",
		InitialAbsent: true,
		EvidenceDir:   filepath.Join(t.TempDir(), "evidence"),
		Metrics:       reg,
		Event:         ev.add,
		Clock:         clockwork.NewFakeClockAt(base),
	}
	if mod != nil {
		mod(&o)
	}
	l, err := check.NewLinearizability(o)
	if err != nil {
		t.Fatal(err)
	}
	return l, reg, ev
}

func TestStaleReadEvidence(t *testing.T) {
	l, reg, ev := newChecker(t, nil)
	for _, op := range []check.KVOp{
		put(0, 0, 10, "k1", "1", ok),
		put(0, 20, 30, "k1", "2", ok),
		get(1, 40, 50, "k1", "1"),
		put(2, 0, 10, "k2", "a", ok),
		get(2, 20, 30, "k2", "a"),
	} {
		l.Record(op)
	}
	r := l.CheckNow()
	if r.Illegal != 1 || r.OK != 1 || r.Unknown != 0 {
		t.Fatalf("results %+v", r)
	}
	v := r.LastViolation
	if v == nil || v.Key != "k1" || v.Evidence == "" {
		t.Fatalf("violation %+v", v)
	}
	if !strings.HasPrefix(filepath.Base(v.Evidence), "linearizability-raft-") || !strings.HasSuffix(v.Evidence, ".html") {
		t.Fatalf("evidence name %s", v.Evidence)
	}
	html, err := os.ReadFile(v.Evidence)
	if err != nil || !strings.Contains(string(html), "<html") {
		t.Fatalf("evidence: %v %d bytes", err, len(html))
	}
	if len(ev.got) != 1 {
		t.Fatalf("events %v", ev.got)
	}
	f := ev.got[0]
	if f["key"] != "k1" || f["invariant"] != "linearizability" || f["component"] != "raft" || f["evidence"] != v.Evidence ||
		f["window_start"] == "" || f["window_end"] == "" {
		t.Fatalf("event fields %v", f)
	}
	if got := testutil.ToFloat64(counter(t, reg, "soakd_invariant_violations_total")); got != 1 {
		t.Fatalf("violations %v", got)
	}
}

// counter finds the single series of a metric family in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for i := 0; i+1 < len(labels); i += 2 {
					found := false
					for _, lp := range m.GetLabel() {
						if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
							found = true
						}
					}
					if !found {
						continue metrics
					}
				}
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
		t.Fatalf("no %s %v", name, labels)
		return 0
	})
}

type collectorFunc func() float64

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc("x", "x", nil, nil)
}

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.GaugeValue, f())
}

func TestEvidenceBounded(t *testing.T) {
	l, _, _ := newChecker(t, nil)
	dir := ""
	for i := 0; i < check.EvidenceKeep+5; i++ {
		off := i * 1000
		key := "k" + string(rune('a'+i))
		l.Record(put(0, off, off+10, key, "1", ok))
		l.Record(get(1, off+20, off+30, key, ""))
		r := l.CheckNow()
		if r.Illegal != uint64(i+1) {
			t.Fatalf("round %d: %+v", i, r)
		}
		dir = filepath.Dir(r.LastViolation.Evidence)
	}
	files, err := filepath.Glob(filepath.Join(dir, "linearizability-raft-*.html"))
	if err != nil || len(files) != check.EvidenceKeep {
		t.Fatalf("%d files, %v", len(files), err)
	}
}

func TestMetrics(t *testing.T) {
	l, reg, _ := newChecker(t, nil)
	// A second checker on the same registry shares the families.
	if _, err := check.NewLinearizability(check.LinearizabilityOptions{Component: "pbft", Metrics: reg}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []check.KVOp{
		put(0, 0, 10, "a", "1", ok), get(1, 20, 30, "a", "1"),
		put(0, 0, 10, "b", "1", ok), get(1, 20, 30, "b", ""),
		put(0, 0, 10, "c", "1", ok), put(0, 5, 6, "c", "2", failed),
		{Op: "frob", Key: "d", Outcome: ok},
	} {
		l.Record(op)
	}
	r := l.CheckNow()
	if r.OK != 2 || r.Illegal != 1 || r.Failed != 1 || r.Dropped != 1 || r.Recorded != 7 || r.Checked != 5 {
		t.Fatalf("%+v", r)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"soakd_checks_total", []string{"component", "raft", "result", "ok"}, 2},
		{"soakd_checks_total", []string{"component", "raft", "result", "illegal"}, 1},
		{"soakd_checks_total", []string{"component", "raft", "result", "unknown"}, 0},
		{"soakd_checks_total", []string{"component", "pbft", "result", "ok"}, 0},
		{"soakd_invariant_violations_total", []string{"component", "raft", "invariant", "linearizability"}, 1},
		{"soakd_check_dropped_ops_total", []string{"component", "raft", "reason", "invalid"}, 1},
		{"soakd_check_buffered_ops", []string{"component", "raft"}, 0},
	} {
		if got := testutil.ToFloat64(counter(t, reg, c.name, c.labels...)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestUnknownOnTimeout(t *testing.T) {
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) { o.Timeout = time.Nanosecond })
	for i := 0; i < 50; i++ {
		l.Record(put(i, 0, 100, "x", string(rune('a'+i)), ok))
	}
	l.Record(get(0, 200, 210, "x", "zz"))
	r := l.CheckNow()
	if r.Unknown != 1 || r.Illegal != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestStartStopTicker(t *testing.T) {
	clock := clockwork.NewFakeClockAt(base)
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) {
		o.Clock = clock
		o.Window = time.Second
		o.MaxOpDuration = 500 * time.Millisecond
	})
	ctx := t.Context()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l.Record(put(0, 0, 10, "x", "1", ok))
	l.Record(get(1, 20, 30, "x", ""))
	clock.Advance(time.Second) // cut at 500ms
	deadline := time.Now().Add(10 * time.Second)
	for l.Results().Windows == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no window checked")
		}
		time.Sleep(time.Millisecond)
	}
	if r := l.Results(); r.Illegal != 1 {
		t.Fatalf("%+v", r)
	}
	l.Record(put(0, 600, 610, "y", "1", ok))
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r := l.Results(); r.OK != 1 || r.Buffered != 0 {
		t.Fatalf("after stop: %+v", r)
	}
}
