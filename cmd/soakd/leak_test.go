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

// TestLeakCanariesEndToEnd runs four real daemons side by side for the same
// few minutes: a heap canary and a goroutine canary that must fire (with
// evidence naming the canary, delivered to the real Alertmanager and
// resolved there after the revert), and a plateau canary and a clean run
// that must fire nothing.
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
		want           string // alert that must fire; "" for none
		topFunc        string
	}
	variants := []variant{
		{"heap", `{at: 0s, duration: 3m30s, kind: leak, params: {resource: heap, rate: 16MiB/min}}`, "SoakdHeapLeak", "leak.leakHeap"},
		{"goroutines", `{at: 0s, duration: 3m30s, kind: leak, params: {resource: goroutines, rate: 80/min}}`, "SoakdGoroutineLeak", "leak.parkForever"},
		{"plateau", `{at: 0s, duration: 5m, kind: leak, params: {resource: heap, rate: 16MiB/min, shape: plateau, plateau_after: 30s}}`, "", ""},
		{"clean", ``, "", ""},
	}
	procs := make([]*proc, len(variants))
	states := make([]string, len(variants))
	stop := make(chan struct{})
	results := make([]func() map[string]time.Duration, len(variants))
	for i, v := range variants {
		states[i] = filepath.Join(t.TempDir(), v.name)
		procs[i] = startDaemon(t, nil, "--config", leakConfig(t, am, v.timeline), "--state-dir", states[i])
		results[i] = watchAlerts(procs[i], start, stop)
	}

	// Each firing variant must fire within 3 minutes of its canary's start.
	runIDs := make([]string, len(variants))
	for i, v := range variants {
		runIDs[i] = procs[i].status().RunID
		if v.want == "" {
			continue
		}
		deadline := start.Add(3 * time.Minute)
		for {
			if as := procs[i].alerts(); len(as) > 0 {
				if as[0].Name != v.want {
					t.Fatalf("%s: fired %s, want %s", v.name, as[0].Name, v.want)
				}
				t.Logf("%s: %s fired after %v; evidence %s", v.name, v.want, time.Since(start).Round(time.Second), as[0].Evidence)
				s := readSummary(t, as[0].Evidence)
				var top string
				if v.want == "SoakdHeapLeak" && len(s.TopHeapSites) > 0 {
					top = s.TopHeapSites[0].Function
				} else if len(s.TopStacks) > 0 {
					top = s.TopStacks[0].Key
				}
				if !strings.Contains(top, v.topFunc) {
					t.Errorf("%s: evidence's top growth is %q, want the canary's %s", v.name, top, v.topFunc)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s did not fire within 3 minutes\n%s", v.name, v.want, procs[i].stderr)
			}
			time.Sleep(time.Second)
		}
		// Delivered to the real Alertmanager: the dispatcher sends in the
		// background, so give it a moment on a busy machine.
		var a *testutil.GettableAlert
		for until := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			got, body := testutil.GetAlerts(t, http.DefaultClient, am+"/api/v2/alerts?active=true")
			if a = testutil.FindAlert(got, v.want, runIDs[i]); a != nil {
				break
			}
			if time.Now().After(until) {
				t.Fatalf("%s: %s for run %s not in Alertmanager within 30s: %s", v.name, v.want, runIDs[i], body)
			}
		}
		if a.Labels["severity"] == "" || a.Annotations["evidence"] == "" || a.Annotations["summary"] == "" {
			t.Errorf("%s: alert in Alertmanager lacks labels or annotations: %+v", v.name, a)
		}
	}

	// The canaries revert at 3m30s; the alerts must resolve, in soakd and in
	// Alertmanager, and the quiet variants must have stayed quiet.
	deadline := start.Add(7 * time.Minute)
	for i, v := range variants {
		if v.want == "" {
			continue
		}
		for {
			got, _ := testutil.GetAlerts(t, http.DefaultClient, am+"/api/v2/alerts?active=true")
			if len(procs[i].alerts()) == 0 && testutil.FindAlert(got, v.want, runIDs[i]) == nil {
				t.Logf("%s: resolved after %v", v.name, time.Since(start).Round(time.Second))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s did not resolve after the canary was reverted\n%s", v.name, v.want, procs[i].stderr)
			}
			time.Sleep(2 * time.Second)
		}
	}
	// Give the quiet variants the same stretch as the plateau canary.
	if rest := time.Until(start.Add(5*time.Minute + 30*time.Second)); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	for i, v := range variants {
		seen := results[i]()
		if v.want == "" && len(seen) > 0 {
			t.Errorf("%s: fired %v, want nothing\n%s", v.name, seen, procs[i].stderr)
		}
		if v.want != "" && len(seen) != 1 {
			t.Errorf("%s: alerts seen %v, want only %s", v.name, seen, v.want)
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
