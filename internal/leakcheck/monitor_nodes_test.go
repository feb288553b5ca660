package leakcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	rpprof "runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/alert"
)

// The sampler reads what a real net/http/pprof serves, and procfs of a
// local process or the process collector's /metrics of a remote one.
func TestTargetSamplerReadsRealHandlers(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ts := newTargetSampler()
	defer ts.client.CloseIdleConnections()
	ctx := context.Background()
	now := time.Now()

	local := Target{Node: "self", PprofURL: srv.URL + "/debug/pprof/", PID: os.Getpid}
	r, inc, err := ts.read(ctx, local, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.HeapLive <= 0 || !r.HeapFresh || r.Goroutines < 2 || r.FDs < 3 || r.RSS <= 0 || r.Threads < 1 {
		t.Fatalf("local reading %+v: want every signal read", r)
	}
	if inc != fmt.Sprint(os.Getpid()) {
		t.Fatalf("local incarnation %q, want the pid %d", inc, os.Getpid())
	}

	remote := Target{Node: "pod", PprofURL: srv.URL + "/debug/pprof/", MetricsURL: srv.URL + "/metrics"}
	r, inc, err = ts.read(ctx, remote, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.HeapLive <= 0 || r.Goroutines < 2 || r.FDs < 3 || r.RSS <= 0 || r.Threads < 1 || inc == "" {
		t.Fatalf("remote reading %+v, incarnation %q: want every signal and the start time from /metrics", r, inc)
	}

	if _, ok := r.Value(SignalFDs); !ok {
		t.Fatal("a remote target with /metrics has no descriptor signal")
	}

	// A node that maps memory for the system it runs (a migration host's
	// guests) says how much of it is resident; its RSS signal leaves that
	// out, read locally or remotely.
	const guests = 64 << 20
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: OffheapResidentMetric, Help: "test"},
		func() float64 { return guests }))
	for _, tg := range []Target{remote, {Node: "self", PprofURL: local.PprofURL, PID: os.Getpid, MetricsURL: srv.URL + "/metrics"}} {
		whole := r.RSS
		if tg.PID != nil {
			lr, _, err := ts.read(ctx, local, now)
			if err != nil {
				t.Fatal(err)
			}
			whole = lr.RSS
		}
		got, _, err := ts.read(ctx, tg, now)
		if err != nil {
			t.Fatal(err)
		}
		// RSS moves a little between two reads: compare against half the guests.
		if left := whole - got.RSS; left < guests/2 || left > 2*guests {
			t.Errorf("%s: RSS %v with %v of guests resident, %v without: want the guests left out", tg.Node, got.RSS, guests, whole)
		}
	}
	bare := Target{Node: "bare", PprofURL: srv.URL + "/debug/pprof/"}
	r, _, err = ts.read(ctx, bare, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{SignalFDs, SignalRSS, SignalThreads} {
		if v, ok := r.Value(sig); ok {
			t.Errorf("a remote target without metrics_url has %s = %v: nothing reads it", sig, v)
		}
	}
	if _, ok := r.Value(SignalGoroutines); !ok {
		t.Error("a remote target without metrics_url has no goroutine signal")
	}

	snap, err := ts.snapshot(ctx, local, now)
	if err != nil || len(snap.Heap) == 0 || len(snap.Goroutine) == 0 {
		t.Fatalf("snapshot: %d heap bytes, %d goroutine bytes, %v", len(snap.Heap), len(snap.Goroutine), err)
	}
	if _, err := ts.leakProfile(ctx, local); err != nil {
		t.Fatalf("goroutineleak profile: %v (a binary without one answers 404, which is no error)", err)
	}

	down := Target{Node: "down", PprofURL: srv.URL + "/debug/pprof/", PID: func() int { return 0 }}
	if _, _, err := ts.read(ctx, down, now); err == nil {
		t.Fatal("a node that is down read without error")
	}
	notPprof := Target{Node: "web", PprofURL: srv.URL + "/nothing/"}
	if _, _, err := ts.read(ctx, notPprof, now); err == nil {
		t.Fatal("a target without pprof read without error")
	}
}

// fakeNode serves what a node's pprof handlers do, with the goroutine
// count growing by slope at every sample, and the test process's own
// profiles for evidence.
type fakeNode struct {
	srv   *httptest.Server
	mu    sync.Mutex
	count float64
	slope float64
	pid   atomic.Int64
}

func newFakeNode(t *testing.T) *fakeNode {
	n := &fakeNode{count: 40}
	n.pid.Store(int64(os.Getpid()))
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("debug") == "1" {
			fmt.Fprintf(w, "heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 1\n# HeapAlloc = %d\n# HeapObjects = 900\n", 8<<20)
			return
		}
		runtime.GC()
		_ = rpprof.Lookup("heap").WriteTo(w, 0)
	})
	mux.HandleFunc("/debug/pprof/goroutine", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("debug") == "1" {
			n.mu.Lock()
			n.count += n.slope
			c := n.count
			n.mu.Unlock()
			fmt.Fprintf(w, "goroutine profile: total %d\n1 @ 0x1\n", int(c))
			return
		}
		_ = rpprof.Lookup("goroutine").WriteTo(w, 0)
	})
	n.srv = httptest.NewServer(mux)
	t.Cleanup(n.srv.Close)
	return n
}

func (n *fakeNode) target() Target {
	return Target{Component: "raft", Node: "node-2", PprofURL: n.srv.URL + "/debug/pprof/", PID: func() int { return int(n.pid.Load()) }}
}

func (n *fakeNode) setSlope(s float64) { n.mu.Lock(); n.slope = s; n.mu.Unlock() }

// A node process's leak fires an alert that names the node, with evidence
// from its profiles; its restart starts its windows again but keeps the
// alert; the next soakd incarnation re-adopts it; a completed run resolves
// it. soakd's own signals stay quiet throughout.
func TestMonitorNodeLeak(t *testing.T) {
	clock := clockwork.NewFakeClock()
	node := newFakeNode(t)
	var mu sync.Mutex
	var notified, restored []alert.Alert
	state := filepath.Join(t.TempDir(), "leak-alerts.json")
	opts := MonitorOptions{Clock: clock, StatePath: state, Targets: func() []Target { return []Target{node.target()} },
		Notify:  func(a alert.Alert) { mu.Lock(); notified = append(notified, a); mu.Unlock() },
		Restore: func(a alert.Alert) { mu.Lock(); restored = append(restored, a); mu.Unlock() }}
	m, _ := newTestMonitor(t, opts)
	defer m.ts.client.CloseIdleConnections()
	now := clock.Now()
	m.started = now
	tick := func(n int) {
		for range n {
			now = now.Add(testInterval)
			m.Tick(now)
		}
	}

	tick(30) // flat: 7m30s, more than the 5-minute window
	if f := m.Firing(); len(f) != 0 {
		t.Fatalf("flat node: firing %+v", f)
	}
	node.setSlope(10) // 40 goroutines a minute
	for i := 0; i < 40 && len(m.Firing()) == 0; i++ {
		tick(1)
	}
	f := m.Firing()
	if len(f) != 1 || f[0].Node != "raft/node-2" || f[0].Signal != SignalGoroutines || f[0].Evidence == "" {
		t.Fatalf("firing %+v: want one goroutine alert of raft/node-2 with evidence", f)
	}
	mu.Lock()
	a := notified[len(notified)-1]
	mu.Unlock()
	if a.Name != "SoakdGoroutineLeak" || a.Labels["node"] != "node-2" || a.Labels["component"] != "raft" || !a.Firing() {
		t.Fatalf("alert %+v: want SoakdGoroutineLeak labelled node-2, component raft", a)
	}
	var sum Summary
	b, err := os.ReadFile(filepath.Join(f[0].Evidence, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil || sum.Node != "raft/node-2" || len(sum.TopStacks) == 0 {
		t.Fatalf("evidence summary: node %q, %d stacks, %v: want the node's profiles", sum.Node, len(sum.TopStacks), err)
	}
	if v := testutil.ToFloat64(m.nm.firing.WithLabelValues("raft", "node-2", SignalGoroutines)); v != 1 {
		t.Fatalf("soakd_node_leak_firing = %v, want 1", v)
	}

	// A restart: a new pid. The windows start again; the alert stays.
	node.setSlope(0)
	node.pid.Store(int64(os.Getppid()))
	tick(2)
	if v := testutil.ToFloat64(m.nm.restarts.WithLabelValues("raft", "node-2")); v != 2 {
		t.Fatalf("incarnations = %v, want 2", v)
	}
	if ns := m.nodes["raft/node-2"]; ns.signals[1].ring.Len() != 2 {
		t.Fatalf("after the restart the goroutine window holds %d samples, want 2", ns.signals[1].ring.Len())
	}
	if len(m.Firing()) != 1 {
		t.Fatal("a node restart resolved its alert without a verdict")
	}

	// The next soakd incarnation re-adopts it, not paged again.
	m2, _ := newTestMonitor(t, opts)
	defer m2.ts.client.CloseIdleConnections()
	m2.restore(now)
	mu.Lock()
	if len(restored) != 1 || restored[0].Labels["node"] != "node-2" || !restored[0].Firing() {
		t.Fatalf("restored %+v: want the node's firing alert", restored)
	}
	mu.Unlock()
	if f := m2.Firing(); len(f) != 1 || f[0].Node != "raft/node-2" {
		t.Fatalf("after restore, firing %+v", f)
	}
	m2.ResolveAll("the run completed")
	mu.Lock()
	last := notified[len(notified)-1]
	mu.Unlock()
	if last.Labels["node"] != "node-2" || last.Firing() || !bytes.Contains([]byte(last.Annotations["description"]), []byte("the run completed")) {
		t.Fatalf("last notification %+v: want the node's alert resolved by the completed run", last)
	}
	if f := m2.Firing(); len(f) != 0 {
		t.Fatalf("after ResolveAll, firing %+v", f)
	}
}
