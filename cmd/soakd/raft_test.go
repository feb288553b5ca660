package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape returns the samples of /metrics whose series starts with prefix.
func (d *proc) scrape(prefix string) map[string]float64 {
	d.t.Helper()
	resp, err := http.Get("http://" + d.addr + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestRaftUnderLoad runs soakd with the real 3-node Raft cluster at the
// default rate (500 ops/s, no ramp) and checks that the engine keeps its
// schedule over 30 s, that outcomes reach /metrics, and that the
// linearizability checker has judged windows and found nothing illegal.
func TestRaftUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("45 s of real time")
	}
	cfg := testConfig(t, `
load:
  raft: {ramp_up: 0s}
`)
	cfg = strings.Replace(string(mustRead(t, cfg)), "raft: {enabled: false}", "raft: {enabled: true, nodes: 3}", 1)
	path := writeTemp(t, cfg)
	d := startDaemon(t, nil, "--config", path, "--state-dir", t.TempDir()+"/s")
	time.Sleep(45 * time.Second)
	m := d.scrape("soakd_")
	sched := m[`soakd_load_scheduled_ops_per_second{component="raft"}`]
	achieved := m[`soakd_load_achieved_ops_per_second{component="raft"}`]
	t.Logf("raft: scheduled %.1f ops/s, achieved %.1f ops/s, target 500", sched, achieved)
	if sched < 450 || sched > 550 {
		t.Errorf("scheduled %.1f ops/s, want 500 ± 10%% (Poisson)", sched)
	}
	if achieved/sched < 0.99 {
		t.Errorf("achieved/scheduled = %.4f, want >= 0.99", achieved/sched)
	}
	if m[`soakd_ops_total{component="raft",op="put",outcome="ok"}`] < 1000 {
		t.Errorf("too few ok puts: %v", m)
	}
	if ok := m[`soakd_checks_total{checker="linearizability",component="raft",result="ok"}`]; ok == 0 {
		t.Errorf("linearizability checker judged no window")
	}
	if bad := m[`soakd_checks_total{checker="linearizability",component="raft",result="illegal"}`]; bad != 0 {
		t.Errorf("linearizability: %v illegal windows\n%s", bad, d.stderr)
	}
	if m[`soakd_raft_nodes_up`] != 3 {
		t.Errorf("raft nodes up = %v", m[`soakd_raft_nodes_up`])
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestCheckerKeepsUpAt2000OpsPerSecond runs the real Raft cluster at
// 2,000 ops/s for a minute: the linearizability checker drops no op, closes
// its windows on the ticker (none early under buffer pressure), and each
// window spans about check.DefaultWindow of history.
func TestCheckerKeepsUpAt2000OpsPerSecond(t *testing.T) {
	if testing.Short() {
		t.Skip("70 s of real time")
	}
	cfg := testConfig(t, `
load:
  raft: {rate: 2000, ramp_up: 0s}
`)
	cfg = strings.Replace(string(mustRead(t, cfg)), "raft: {enabled: false}", "raft: {enabled: true, nodes: 3}", 1)
	d := startDaemon(t, nil, "--config", writeTemp(t, cfg), "--state-dir", t.TempDir()+"/s")
	time.Sleep(65 * time.Second)
	m := d.scrape("soakd_")
	const lin = `checker="linearizability",component="raft"`
	sched := m[`soakd_load_scheduled_ops_per_second{component="raft"}`]
	achieved := m[`soakd_load_achieved_ops_per_second{component="raft"}`]
	var ops float64
	for k, v := range m {
		if strings.HasPrefix(k, `soakd_ops_total{component="raft"`) {
			ops += v
		}
	}
	t.Logf("raft: scheduled %.0f ops/s, achieved %.0f ops/s, %.0f ops; checker: windows ticker %v pressure %v, last span %vs, forced cuts %v, buffered %v, checks ok %v unknown %v",
		sched, achieved, ops, m[`soakd_check_windows_total{`+lin+`,trigger="ticker"}`], m[`soakd_check_windows_total{`+lin+`,trigger="pressure"}`],
		m[`soakd_check_window_seconds{`+lin+`}`], m[`soakd_check_forced_cuts_total{`+lin+`}`], m[`soakd_check_buffered_ops{`+lin+`}`],
		m[`soakd_checks_total{`+lin+`,result="ok"}`], m[`soakd_checks_total{`+lin+`,result="unknown"}`])
	if achieved < 1800 {
		t.Errorf("achieved %.0f ops/s: the cluster did not carry 2,000 ops/s, so this run proves less", achieved)
	}
	for _, reason := range []string{"buffer_full", "late", "invalid"} {
		if v := m[`soakd_check_dropped_ops_total{`+lin+`,reason="`+reason+`"}`]; v != 0 {
			t.Errorf("checker dropped %v ops (%s)", v, reason)
		}
	}
	if v := m[`soakd_check_windows_total{`+lin+`,trigger="pressure"}`]; v != 0 {
		t.Errorf("%v windows closed early under buffer pressure", v)
	}
	if v := m[`soakd_check_windows_total{`+lin+`,trigger="ticker"}`]; v < 4 {
		t.Errorf("only %v ticker windows in 65 s", v)
	}
	if span := m[`soakd_check_window_seconds{`+lin+`}`]; span < 9 || span > 11 {
		t.Errorf("last window spans %vs of history, want about 10s", span)
	}
	if bad := m[`soakd_checks_total{`+lin+`,result="illegal"}`]; bad != 0 {
		t.Errorf("linearizability: %v illegal windows\n%s", bad, d.stderr)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
