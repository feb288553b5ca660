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
	ok      = components.OutcomeOK
	failed  = components.OutcomeFailed
	unknown = components.OutcomeUnknown
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

func cas(c, call, ret int, key, expect, v string, swapped bool, out components.Outcome) check.KVOp {
	return check.KVOp{ClientID: c, Call: at(call), Return: at(ret), Op: "cas", Key: key,
		Expect: []byte(expect), Value: []byte(v), Swapped: swapped, Outcome: out}
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

func runHistory(t *testing.T, ops ...check.KVOp) (check.Results, *events) {
	t.Helper()
	l, _, ev := newChecker(t, nil)
	for _, op := range ops {
		l.Record(op)
	}
	return l.CheckNow(), ev
}

func TestHandBuiltHistories(t *testing.T) {
	cases := []struct {
		name    string
		ops     []check.KVOp
		illegal bool
	}{
		{"concurrent correct", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 5, 20, "x", "2", ok), // concurrent with put 1 and with the first read
			get(2, 12, 15, "x", "2"),    // put 2 linearized after put 1, before this read
			get(3, 16, 30, "x", "2"),
			get(0, 25, 26, "x", "2"),
			get(1, 0, 3, "y", ""),
			put(1, 21, 22, "y", "a", ok),
			get(2, 23, 24, "y", "a"),
		}, false},
		{"reads concurrent with a put may see either value", []check.KVOp{
			put(0, 0, 1, "x", "1", ok),
			put(1, 10, 20, "x", "2", ok),
			get(2, 11, 12, "x", "2"),
			get(3, 13, 14, "x", "2"),
			get(4, 15, 30, "x", "2"),
		}, false},
		{"stale read", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(0, 20, 30, "x", "2", ok),
			get(1, 40, 50, "x", "1"),
		}, true},
		{"lost write", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			get(1, 20, 30, "x", ""),
			get(2, 40, 50, "x", ""),
		}, true},
		{"reordered pair", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(0, 20, 30, "x", "2", ok),
			get(1, 40, 50, "x", "2"),
			get(1, 60, 70, "x", "1"), // put 1 applied after put 2
		}, true},
		{"non-monotonic reads across clients", []check.KVOp{
			put(0, 0, 100, "x", "1", ok),
			get(1, 10, 20, "x", "1"),
			get(2, 30, 40, "x", ""), // once seen, 1 cannot disappear
		}, true},
		{"cas ok", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			cas(1, 20, 30, "x", "1", "2", true, ok),
			cas(2, 40, 50, "x", "1", "3", false, ok),
			get(0, 60, 70, "x", "2"),
			cas(1, 80, 90, "y", "1", "2", false, ok), // absent key never matches
		}, false},
		{"cas swapped on wrong value", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			cas(1, 20, 30, "x", "5", "2", true, ok),
		}, true},
		{"cas not swapped although it matched", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			cas(1, 20, 30, "x", "1", "2", false, ok),
		}, true},
		{"cas swap lost", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			cas(1, 20, 30, "x", "1", "2", true, ok),
			get(0, 40, 50, "x", "1"),
		}, true},
		{"unknown put that applied", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 20, 30, "x", "2", unknown),
			get(2, 40, 50, "x", "2"),
		}, false},
		{"unknown put applied after its timeout", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 20, 30, "x", "2", unknown),
			get(2, 40, 50, "x", "1"),
			get(2, 60, 70, "x", "2"),
		}, false},
		{"unknown put that did not apply", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 20, 30, "x", "2", unknown),
			get(2, 40, 50, "x", "1"),
		}, false},
		{"unknown cas", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			cas(1, 20, 30, "x", "1", "2", false, unknown), // output unconstrained
			get(2, 40, 50, "x", "2"),
		}, false},
		{"unknown put does not excuse a lost acknowledged write", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 20, 30, "x", "2", unknown),
			put(0, 40, 50, "x", "3", ok),
			get(2, 60, 70, "x", "1"),
		}, true},
		{"failed put whose value is read", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 20, 30, "x", "2", failed),
			get(2, 40, 50, "x", "2"),
		}, true},
		{"failed put not read", []check.KVOp{
			put(0, 0, 10, "x", "1", ok),
			put(1, 20, 30, "x", "2", failed),
			get(2, 40, 50, "x", "1"),
		}, false},
		{"read of a value never written", []check.KVOp{
			get(2, 40, 50, "x", "zz"),
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, ev := runHistory(t, tc.ops...)
			if tc.illegal {
				if r.Illegal != 1 || r.LastViolation == nil {
					t.Fatalf("want illegal, got %+v", r)
				}
				if len(ev.got) != 1 {
					t.Fatalf("events: %v", ev.got)
				}
			} else if r.Illegal != 0 || r.Unknown != 0 || r.OK == 0 {
				t.Fatalf("want ok, got %+v (violation %+v)", r, r.LastViolation)
			}
		})
	}
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

func TestCrossWindowLostWrite(t *testing.T) {
	l, _, _ := newChecker(t, nil)
	l.Record(put(0, 0, 10, "x", "1", ok))
	l.Record(get(1, 20, 30, "x", "1"))
	r := l.CheckUntil(at(100))
	if r.OK != 1 || r.Illegal != 0 {
		t.Fatalf("window 1: %+v", r)
	}
	l.Record(put(0, 110, 120, "x", "2", ok))
	r = l.CheckUntil(at(200))
	if r.OK != 2 || r.Illegal != 0 {
		t.Fatalf("window 2: %+v", r)
	}
	// Window 3: a stale read of the value overwritten in window 2.
	l.Record(get(1, 210, 220, "x", "1"))
	r = l.CheckUntil(at(300))
	if r.Illegal != 1 || r.LastViolation == nil || !r.LastViolation.WindowStart.Equal(at(200)) {
		t.Fatalf("window 3: %+v", r)
	}

	// The put is in window 1, the read that misses it in window 2.
	l2, _, _ := newChecker(t, nil)
	l2.Record(put(0, 0, 10, "x", "1", ok))
	if r := l2.CheckUntil(at(100)); r.OK != 1 {
		t.Fatalf("%+v", r)
	}
	l2.Record(get(1, 110, 120, "x", ""))
	if r := l2.CheckUntil(at(200)); r.Illegal != 1 {
		t.Fatalf("lost write across windows not caught: %+v", r)
	}
}

func TestCrossWindowStraddlers(t *testing.T) {
	// A put in flight at the cut is seen by a read before the cut and a
	// read after it: linearizable.
	l, _, _ := newChecker(t, nil)
	l.Record(put(0, 0, 10, "x", "1", ok))
	l.Record(get(1, 92, 95, "x", "2"))
	l.Record(put(2, 90, 110, "x", "2", ok)) // straddles the cut at 100
	r := l.CheckUntil(at(100))
	if r.Illegal != 0 || r.Unknown != 0 {
		t.Fatalf("window 1: %+v", r)
	}
	l.Record(get(1, 120, 130, "x", "2"))
	r = l.CheckUntil(at(200))
	if r.Illegal != 0 || r.Unknown != 0 || r.OK != 2 {
		t.Fatalf("window 2: %+v", r)
	}

	// The straddling put may have applied before the cut and been
	// overwritten there: the later read of the overwriting value is fine.
	l2, _, _ := newChecker(t, nil)
	l2.Record(put(0, 0, 10, "x", "1", ok))
	l2.Record(put(2, 50, 105, "x", "2", ok)) // straddles 100
	l2.Record(get(1, 60, 70, "x", "2"))
	l2.Record(put(1, 80, 90, "x", "3", ok))
	r = l2.CheckUntil(at(100))
	if r.Illegal != 0 {
		t.Fatalf("%+v", r)
	}
	l2.Record(get(1, 120, 130, "x", "3"))
	if r := l2.CheckUntil(at(200)); r.Illegal != 0 || r.Unknown != 0 {
		t.Fatalf("%+v", r)
	}

	// An unknown put of window 1 applied late, in window 2: fine.
	// UnknownTTL bounds how long it may still land.
	l3, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) { o.UnknownTTL = 150 * time.Millisecond })
	l3.Record(put(0, 0, 10, "x", "1", ok))
	l3.Record(put(1, 20, 30, "x", "2", unknown))
	l3.Record(get(2, 40, 50, "x", "1"))
	l3.CheckUntil(at(100))
	l3.Record(get(2, 110, 120, "x", "1"))
	l3.Record(get(2, 130, 140, "x", "2"))
	if r := l3.CheckUntil(at(200)); r.Illegal != 0 || r.Unknown != 0 {
		t.Fatalf("%+v", r)
	}
	// ... but once it can no longer land, an acknowledged put that
	// vanishes is caught.
	l3.Record(put(0, 210, 220, "x", "3", ok))
	l3.Record(get(2, 230, 240, "x", "2"))
	if r := l3.CheckUntil(at(300)); r.Illegal != 1 {
		t.Fatalf("%+v", r)
	}
}

func TestLateOpResetsKey(t *testing.T) {
	l, reg, _ := newChecker(t, nil)
	l.Record(put(0, 0, 10, "x", "1", ok))
	l.CheckUntil(at(100))
	// Called before the checked cut, recorded after it: its window's end
	// state missed it. It must not cause a false alarm.
	l.Record(put(1, 50, 60, "x", "2", ok))
	l.Record(get(2, 110, 120, "x", "2"))
	r := l.CheckUntil(at(200))
	if r.Illegal != 0 || r.Dropped != 1 {
		t.Fatalf("%+v", r)
	}
	if got := testutil.ToFloat64(counter(t, reg, "soakd_check_dropped_ops_total", "reason", "late")); got != 1 {
		t.Fatalf("late drops %v", got)
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

func TestBufferFullDropsAreHonest(t *testing.T) {
	l, reg, _ := newChecker(t, func(o *check.LinearizabilityOptions) { o.MaxOps = 10 })
	// 10 keys fill the buffer; then 5 more writes are dropped. Reads of
	// the dropped writes must not be reported illegal: those keys are
	// unknown until the dropped write's window has passed.
	for i := 0; i < 15; i++ {
		l.Record(put(0, i*10, i*10+5, string(rune('a'+i)), "1", ok))
	}
	r := l.CheckNow()
	if r.Dropped != 5 || r.OK != 10 || r.MaxBuffered != 10 {
		t.Fatalf("%+v", r)
	}
	for i := 14; i >= 6; i-- { // the dropped keys first
		l.Record(get(1, 200+i*10, 200+i*10+5, string(rune('a'+i)), "1"))
	}
	// A read of a value never written, on a key whose write was dropped:
	// the checker no longer knows that key's state, so it must not judge.
	l.Record(get(1, 400, 410, "o", "never"))
	r = l.CheckNow()
	// The dropped puts returned after the first cut (95ms): their keys
	// are unknown in the window that holds them, the others are ok.
	if r.Illegal != 0 || r.Unknown != 5 || r.OK != 14 || r.Dropped != 5 {
		t.Fatalf("%+v", r)
	}
	if got := testutil.ToFloat64(counter(t, reg, "soakd_check_dropped_ops_total", "reason", "buffer_full")); got != 5 {
		t.Fatalf("dropped metric %v", got)
	}
}

func TestResumedStoreStartsUnknown(t *testing.T) {
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) { o.InitialAbsent = false })
	l.Record(get(0, 0, 10, "x", "old")) // written before this run
	l.Record(get(1, 20, 30, "y", ""))   // absent
	l.Record(put(1, 20, 30, "z", "new", ok))
	l.Record(get(1, 40, 50, "z", "old")) // stale read
	if r := l.CheckUntil(at(100)); r.OK != 2 || r.Illegal != 1 {
		t.Fatalf("%+v", r)
	}
	l.Record(get(0, 110, 120, "x", "old"))
	l.Record(get(0, 110, 120, "y", ""))
	if r := l.CheckUntil(at(200)); r.OK != 4 || r.Illegal != 1 {
		t.Fatalf("%+v", r)
	}
	l.Record(get(0, 210, 220, "x", "other")) // x held "old" at the cut
	if r := l.CheckUntil(at(300)); r.Illegal != 2 {
		t.Fatalf("%+v", r)
	}
}
