package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/daemon"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/run"
	"github.com/soakd/soakd/internal/testutil"
)

// leakConfig is a short soak with lowered thresholds: a 2-minute window
// sampled every 5 s at a plain 0.99 (no 72-hour false-alarm budget), so a
// leak at 8x the threshold fires in minutes.
func leakConfig(t *testing.T, amURL, timeline string) string {
	return testConfig(t, fmt.Sprintf(`
leakcheck:
  interval: 5s
  window: 2m
  confidence: 0.99
  false_alarm_budget: {alarms: 0}
  for: 3
  thresholds:
    heap_live_bytes: 2MiB/min
    goroutines: 10/min
    open_fds: 5/min
    rss_bytes: 64MiB/min
alerting: {alertmanager_url: %q}
faults:
  timeline: [%s]
`, amURL, timeline))
}

func (d *proc) alerts() []leakcheck.FiringAlert {
	d.t.Helper()
	resp, err := http.Get("http://" + d.addr + "/api/v1/alerts")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Alerts []leakcheck.FiringAlert `json:"alerts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		d.t.Fatal(err)
	}
	return out.Alerts
}

// watchAlerts polls a daemon's alerts until stop, recording every alert
// name seen firing and when it was first seen.
func watchAlerts(d *proc, start time.Time, stop <-chan struct{}) func() map[string]time.Duration {
	var mu sync.Mutex
	seen := map[string]time.Duration{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			resp, err := http.Get("http://" + d.addr + "/api/v1/alerts")
			if err != nil {
				continue
			}
			var out struct {
				Alerts []leakcheck.FiringAlert `json:"alerts"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			mu.Lock()
			for _, a := range out.Alerts {
				if _, ok := seen[a.Name]; !ok {
					seen[a.Name] = time.Since(start)
				}
			}
			mu.Unlock()
		}
	}()
	return func() map[string]time.Duration {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func readSummary(t *testing.T, dir string) leakcheck.Summary {
	t.Helper()
	var s leakcheck.Summary
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatalf("evidence bundle: %v", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("evidence lists %s: %v", f, err)
		}
	}
	return s
}

// wantAlert is an alert a variant must raise, as soakd and Alertmanager
// must show it.
type wantAlert struct {
	name, signal string
	canary       bool   // the canary's: canary="true", severity info
	severity     string // as Alertmanager shows it
	topFunc      string // the evidence's top growth ("": no evidence to check)
	resolves     bool   // resolves after its cause ends, within the test
}

// TestLeakCanariesEndToEnd runs four real daemons side by side for the same
// few minutes, alerting to the real Alertmanager:
//   - a heap canary, with a goroutine leak planted beside it: the heap
//     alert is the canary's (canary="true", severity info), the goroutine
//     alert a real, critical one; both resolve after their leaks end;
//   - a goroutine canary, with a heap canary below the heap threshold: the
//     goroutine alert is the canary's, and the undetectable heap canary
//     ends with SoakdCanaryMissed (critical);
//   - a plateau canary and a clean run that must fire nothing.
//
// Evidence names the leaking function.
func TestLeakCanariesEndToEnd(t *testing.T) {
	// Minutes of mostly idle waiting: run beside the other long end-to-end test.
	t.Parallel()
	if testing.Short() {
		t.Skip("several minutes of real time")
	}
	am := testutil.StartAlertmanager(t)
	start := time.Now()
	type variant struct {
		name, timeline string
		env            []string
		want           []wantAlert
	}
	variants := []variant{
		{name: "heap", timeline: `{at: 0s, duration: 3m30s, kind: leak, params: {resource: heap, rate: 16MiB/min}}`,
			env: []string{daemon.PlantedLeakEnv + "=resource=goroutines,rate=80/min,for=3m30s"},
			want: []wantAlert{
				{name: "SoakdHeapLeak", signal: "heap_live_bytes", canary: true, severity: "info", topFunc: "leak.leakHeap", resolves: true},
				{name: "SoakdGoroutineLeak", signal: "goroutines", severity: "critical", topFunc: "leak.parkForever", resolves: true},
			}},
		{name: "goroutines", timeline: `{at: 0s, duration: 3m30s, kind: leak, params: {resource: goroutines, rate: 80/min}},
    {at: 0s, duration: 1m, kind: leak, params: {resource: heap, rate: 256KiB/min}}`,
			want: []wantAlert{
				{name: "SoakdGoroutineLeak", signal: "goroutines", canary: true, severity: "info", topFunc: "leak.parkForever", resolves: true},
				{name: leakcheck.AlertCanaryMissed, signal: "heap_live_bytes", severity: "critical"},
			}},
		{name: "plateau", timeline: `{at: 0s, duration: 5m, kind: leak, params: {resource: heap, rate: 16MiB/min, shape: plateau, plateau_after: 30s}}`},
		{name: "clean"},
	}
	procs := make([]*proc, len(variants))
	states := make([]string, len(variants))
	stop := make(chan struct{})
	results := make([]func() map[string]time.Duration, len(variants))
	for i, v := range variants {
		states[i] = filepath.Join(t.TempDir(), v.name)
		procs[i] = startDaemon(t, v.env, "--config", leakConfig(t, am, v.timeline), "--state-dir", states[i])
		results[i] = watchAlerts(procs[i], start, stop)
	}

	// Each wanted alert fires within 4 minutes (the missed canary's is due
	// 2 minutes after its end at 1m), in soakd and in Alertmanager, labelled
	// as it must be.
	runIDs := make([]string, len(variants))
	for i, v := range variants {
		runIDs[i] = procs[i].status().RunID
		for _, w := range v.want {
			checkAlertFires(t, procs[i], am, runIDs[i], v.name, w, start.Add(4*time.Minute))
		}
	}

	// The leaks end at 3m30s: their alerts resolve, in soakd and in
	// Alertmanager; the quiet variants must have stayed quiet.
	deadline := start.Add(7 * time.Minute)
	for i, v := range variants {
		for _, w := range v.want {
			if !w.resolves {
				continue
			}
			for {
				got, _ := testutil.GetAlerts(t, http.DefaultClient, am+"/api/v2/alerts?active=true")
				if !firingIn(procs[i].alerts(), w.name) && testutil.FindAlert(got, w.name, runIDs[i]) == nil {
					t.Logf("%s: %s resolved after %v", v.name, w.name, time.Since(start).Round(time.Second))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s did not resolve after its leak ended\n%s", v.name, w.name, procs[i].stderr)
				}
				time.Sleep(2 * time.Second)
			}
		}
	}
	// Give the quiet variants the same stretch as the plateau canary.
	if rest := time.Until(start.Add(5*time.Minute + 30*time.Second)); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	for i, v := range variants {
		seen := results[i]()
		if len(seen) != len(v.want) {
			t.Errorf("%s: alerts seen %v, want exactly %v\n%s", v.name, seen, v.want, procs[i].stderr)
		}
		_ = procs[i].cmd.Process.Signal(syscall.SIGTERM)
		if code := procs[i].wait(15 * time.Second); code != 0 {
			t.Errorf("%s: exit %d", v.name, code)
		}
		evs, _ := run.ReadEvents(filepath.Join(states[i], "journal.jsonl"), 0, 0, "")
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		t.Logf("%s journal: %s", v.name, strings.Join(types, ","))
	}
}

func firingIn(as []leakcheck.FiringAlert, name string) bool {
	for _, a := range as {
		if a.Name == name {
			return true
		}
	}
	return false
}

// checkAlertFires waits until w fires in soakd (by deadline) and reaches
// Alertmanager, and checks how both show it.
func checkAlertFires(t *testing.T, d *proc, am, runID, variant string, w wantAlert, deadline time.Time) {
	t.Helper()
	var fa leakcheck.FiringAlert
	for {
		var ok bool
		for _, a := range d.alerts() {
			if a.Name == w.name && a.Signal == w.signal {
				fa, ok = a, true
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s on %s did not fire in time\n%s", variant, w.name, w.signal, d.stderr)
		}
		time.Sleep(time.Second)
	}
	t.Logf("%s: %s fired (canary %q); evidence %s", variant, w.name, fa.Canary, fa.Evidence)
	if (fa.Canary != "") != (w.canary || w.name == leakcheck.AlertCanaryMissed) {
		t.Errorf("%s: %s names canary %q, want a canary's: %v", variant, w.name, fa.Canary, w.canary)
	}
	if w.topFunc != "" {
		s := readSummary(t, fa.Evidence)
		var top string
		if w.signal == leakcheck.SignalHeap && len(s.TopHeapSites) > 0 {
			top = s.TopHeapSites[0].Function
		} else if len(s.TopStacks) > 0 {
			top = s.TopStacks[0].Key
		}
		if !strings.Contains(top, w.topFunc) {
			t.Errorf("%s: %s evidence's top growth is %q, want %s", variant, w.name, top, w.topFunc)
		}
	}
	// Delivered to the real Alertmanager: the dispatcher sends in the
	// background, so give it a moment on a busy machine.
	var a *testutil.GettableAlert
	for until := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		got, body := testutil.GetAlerts(t, http.DefaultClient, am+"/api/v2/alerts?active=true")
		if a = testutil.FindAlert(got, w.name, runID); a != nil {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("%s: %s for run %s not in Alertmanager within 30s: %s", variant, w.name, runID, body)
		}
	}
	canary := map[bool]string{true: "true", false: ""}[w.canary]
	if a.Labels["severity"] != w.severity || a.Labels["canary"] != canary || a.Labels["signal"] != w.signal || a.Annotations["summary"] == "" {
		t.Errorf("%s: %s in Alertmanager: labels %v, want severity %s, canary %q, signal %s", variant, w.name, a.Labels, w.severity, canary, w.signal)
	}
	if (w.canary || w.name == leakcheck.AlertCanaryMissed) && a.Annotations["canary_fault"] == "" {
		t.Errorf("%s: %s in Alertmanager names no canary fault: %v", variant, w.name, a.Annotations)
	}
	t.Logf("%s: %s in Alertmanager: %v; %s", variant, w.name, a.Labels, a.Annotations["summary"])
}
