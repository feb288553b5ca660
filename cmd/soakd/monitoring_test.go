package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/grafana"
	"github.com/soakd/soakd/internal/testutil"
)

const (
	grafanaDir = "../../grafana"
	rulesPath  = grafanaDir + "/prometheus/soakd-rules.yaml"
)

// monitoringConfig is leakConfig with a heap canary, a threads threshold,
// and the Raft, PBFT and migration components at a light load, so the
// component panels have data.
func monitoringConfig(t *testing.T) string {
	t.Helper()
	path := leakConfig(t, "", `{at: 0s, duration: 10m, kind: leak, params: {resource: heap, rate: 16MiB/min}}`)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"raft: {enabled: false}", "raft: {enabled: true, nodes: 3, mode: processes}", // node processes: the node panels have data
		"pbft: {enabled: false}", "pbft: {enabled: true, replicas: 4, mode: processes}", // and the replicas' counters come from theirs
		"migration: {enabled: false}", "migration: {enabled: true, hosts: 3, guests: 2, guest_memory: 16MiB}",
		"rss_bytes: 64MiB/min", "rss_bytes: 64MiB/min\n    threads: 100/min",
	).Replace(string(data))
	cfg += "load:\n  raft: {rate: 50, ramp_up: 0s}\n  pbft: {rate: 50, ramp_up: 0s}\n  migration: {interval: 10s}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrapeNames returns the sample names (histograms as _bucket, _sum,
// _count) of a live /metrics.
func scrapeNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// TestMonitoringEndToEnd is W1-6's acceptance test: a short soak with a heap
// canary, scraped by the real Prometheus with grafana/'s rules loaded and
// alerting to the real Alertmanager. The target is up; every metric the
// dashboards and rules name is exported; every dashboard query returns data
// through Prometheus's HTTP API; SoakdHeapLeak fires in Prometheus as the
// canary's (canary="true", severity info, no critical copy) and reaches
// Alertmanager so.
func TestMonitoringEndToEnd(t *testing.T) {
	// Minutes of mostly idle waiting: run beside the other long end-to-end test.
	t.Parallel()
	if testing.Short() {
		t.Skip("about 3 minutes of real time")
	}
	start := time.Now()
	am := testutil.StartAlertmanager(t)
	d := startDaemon(t, nil, "--config", monitoringConfig(t), "--state-dir", filepath.Join(t.TempDir(), "state"))
	prom := testutil.StartPrometheus(t, testutil.PrometheusConfig{
		Job:          "soakd",
		Targets:      []string{d.addr},
		RuleFiles:    []string{rulesPath},
		Alertmanager: am,
	})
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	// The target is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var targets struct {
			ActiveTargets []testutil.PromTarget `json:"activeTargets"`
		}
		err := testutil.PromAPI(client, prom, "/api/v1/targets", nil, &targets)
		if err == nil && len(targets.ActiveTargets) == 1 && targets.ActiveTargets[0].Health == "up" {
			if got := targets.ActiveTargets[0].Labels["instance"]; got != d.addr {
				t.Fatalf("target instance %q, want %q", got, d.addr)
			}
			t.Logf("target up after %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape target not up after 30s: %+v %v", targets.ActiveTargets, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// SoakdHeapLeak fires in Prometheus (soakd's detector fires in about
	// 2 minutes, then the rule's for: 1m) ...
	deadline = start.Add(4 * time.Minute)
	var fired testutil.PromAlert
	for {
		var alerts struct {
			Alerts []testutil.PromAlert `json:"alerts"`
		}
		if err := testutil.PromAPI(client, prom, "/api/v1/alerts", nil, &alerts); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range alerts.Alerts {
			if a.Labels["alertname"] == "SoakdHeapLeak" && a.Labels["instance"] == d.addr && a.Labels["node"] == "" && a.State == "firing" {
				fired, found = a, true
			}
			if a.Labels["alertname"] == "SoakdHeapLeak" && a.Labels["severity"] == "critical" {
				t.Errorf("the canary's heap growth raised a critical copy too: %+v", a)
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SoakdHeapLeak not firing in Prometheus after %v: %+v\nsoakd alerts: %+v\n%s",
				time.Since(start).Round(time.Second), alerts.Alerts, d.alerts(), d.stderr)
		}
		time.Sleep(time.Second)
	}
	t.Logf("SoakdHeapLeak firing in Prometheus after %v (active since %v)", time.Since(start).Round(time.Second), fired.ActiveAt.Sub(start).Round(time.Second))
	if fired.Labels["severity"] != "info" || fired.Labels["canary"] != "true" || fired.Labels["signal"] != "heap_live_bytes" || fired.Labels["job"] != "soakd" ||
		!strings.Contains(fired.Annotations["runbook_url"], "RUNBOOK.md#soakdheapleak") || fired.Annotations["summary"] == "" || fired.Annotations["description"] == "" {
		t.Errorf("firing alert lacks labels or annotations: %+v", fired)
	}

	// ... and reaches the real Alertmanager (soakd itself was given no
	// Alertmanager URL, so this copy came from Prometheus).
	deadline = time.Now().Add(30 * time.Second)
	for {
		got, body := testutil.GetAlerts(t, client, am+"/api/v2/alerts?active=true")
		var a *testutil.GettableAlert
		for i := range got {
			if got[i].Labels["alertname"] == "SoakdHeapLeak" && got[i].Labels["instance"] == d.addr {
				a = &got[i]
			}
		}
		if a != nil {
			if a.Labels["severity"] != "info" || a.Labels["canary"] != "true" || a.Annotations["runbook_url"] == "" || a.Annotations["summary"] == "" {
				t.Errorf("alert in Alertmanager lacks labels or annotations: %+v", a)
			}
			if !strings.Contains(a.GeneratorURL, strings.TrimPrefix(prom, "http://")) {
				t.Errorf("alert in Alertmanager not from the test Prometheus: generatorURL %s", a.GeneratorURL)
			}
			t.Logf("SoakdHeapLeak in Alertmanager after %v", time.Since(start).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SoakdHeapLeak for %s not in Alertmanager: %s", d.addr, body)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// soakd status shows the migration component's own line.
	out, _, code := soakd(t, "status", "--addr", d.addr)
	if code != 0 || !strings.Contains(out, "component  migration") || !strings.Contains(out, "hosts up, migrations ok") {
		t.Errorf("soakd status (exit %d) does not show the migrations:\n%s", code, out)
	}

	// No dead queries: every metric a dashboard or rule names is exported.
	want, err := grafana.ExportedMetrics(grafanaDir+"/dashboards", rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	live := scrapeNames(t, d.addr)
	var missing []string
	for name, where := range want {
		if !live[name] {
			missing = append(missing, fmt.Sprintf("%s (used by %s)", name, strings.Join(uniq(where), "; ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d metric names used by grafana/ are not exported by a live soakd:\n\t%s",
			len(missing), len(want), strings.Join(missing, "\n\t"))
	}

	// Every dashboard query returns data through Prometheus, with the
	// variables as Grafana would expand them for this one daemon.
	queries, err := grafana.DashboardQueries(grafanaDir + "/dashboards")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"job": "soakd", "instance": d.addr, "__rate_interval": "1m"}
	var empty []string
	for _, q := range queries {
		expr := grafana.Expand(q.Expr, vars)
		res, err := testutil.PromQuery(client, prom, expr)
		switch {
		case err != nil:
			t.Errorf("%s: %v\n\t%s", q.Where, err, expr)
		case len(res) == 0:
			empty = append(empty, fmt.Sprintf("%s: %s", q.Where, expr))
		}
	}
	if len(empty) > 0 {
		t.Errorf("%d of %d dashboard queries return no data:\n\t%s", len(empty), len(queries), strings.Join(empty, "\n\t"))
	}
	t.Logf("%d dashboard queries, %d metric names checked after %v", len(queries), len(want), time.Since(start).Round(time.Second))

	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
