package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pbftProcessesConfig is a PBFT-only run with the replicas as processes.
func pbftProcessesConfig(t *testing.T, faults string) string {
	t.Helper()
	cfg := string(mustRead(t, testConfig(t, `
load:
  pbft: {ramp_up: 0s, rate: 100, mix: {put: 0.4, get: 0.4, cas: 0.2}, keys: 50}
faults:
  pause_when_unhealthy: false
`+faults)))
	return writeTemp(t, strings.Replace(cfg, "pbft: {enabled: false}", "pbft: {enabled: true, replicas: 4, mode: processes}", 1))
}

// TestPBFTProcessesModeUnderLoad runs `soakd run` with components.pbft.mode
// processes: the four replicas are `soakd node` child processes under load.
// A crash of the primary is a SIGKILL of its process, restarted from its
// disk; a Byzantine behaviour, a partition and a message fault reach the
// processes (the behaviour is verified by the count the replica process
// keeps); the clients' history stays linearizable, no PBFT invariant
// breaks over the executions the processes stream back, recovery is
// measured, and the children end with soakd.
func TestPBFTProcessesModeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("35 s of real time")
	}
	cfg := pbftProcessesConfig(t, `  timeline:
    - {at: 5s, duration: 5s, kind: crash, target: pbft/primary}
    - {at: 13s, duration: 4s, kind: byzantine, target: pbft/backup, params: {behavior: equivocate}}
    - {at: 19s, duration: 4s, kind: partition, target: pbft/backup}
    - {at: 25s, duration: 3s, kind: drop, target: pbft/primary, params: {probability: 5%}}
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	pid := d.cmd.Process.Pid
	first := childNodes(t, pid)
	if len(first) != 4 {
		t.Fatalf("%d node processes under soakd, want 4", len(first))
	}
	waitEvent(t, state, "fault_reverted", 4, 60*time.Second)
	time.Sleep(2 * time.Second)
	m := d.scrape("soakd_")
	ok := m[`soakd_ops_total{component="pbft",op="put",outcome="ok"}`] + m[`soakd_ops_total{component="pbft",op="get",outcome="ok"}`]
	lin := m[`soakd_checks_total{checker="linearizability",component="pbft",result="ok"}`]
	illegal := m[`soakd_checks_total{checker="linearizability",component="pbft",result="illegal"}`]
	executed := m[`soakd_pbft_executed_total{kind="requests"}`]
	t.Logf("ok puts and gets %.0f, requests executed (all replicas) %.0f, linearizability windows ok %.0f, illegal %.0f", ok, executed, lin, illegal)
	if ok < 1000 || lin == 0 || illegal != 0 {
		t.Errorf("ok puts and gets %.0f, linearizability ok %.0f illegal %.0f\n%s", ok, lin, illegal, d.stderr)
	}
	// The executions come from the processes' event streams: every
	// replica's, so well over the clients' ops.
	if executed < 2*ok {
		t.Errorf("%.0f requests executed by the replica processes for %.0f ok ops: their executions do not reach the checkers", executed, ok)
	}
	for k, v := range m {
		if strings.HasPrefix(k, "soakd_invariant_violations_total") && v != 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
	if _, ok := m[`soakd_pbft_recovery_seconds{phase="commit"}`]; !ok {
		t.Errorf("no recovery measured after the fault windows")
	}
	now := childNodes(t, pid)
	if len(now) != 4 {
		t.Errorf("%d node processes after the crash, want 4", len(now))
	}
	replaced := 0
	for _, p := range first {
		if !slices.Contains(now, p) {
			replaced++
		}
	}
	if replaced != 1 {
		t.Errorf("%d node processes replaced by one crash: %v -> %v", replaced, first, now)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	for _, p := range now {
		if stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "stat")); err == nil && !bytes.Contains(stat, []byte(") Z")) {
			t.Errorf("replica process %d outlived soakd", p)
		}
	}
	all, types := journalTypes(t, state)
	crashed, restarted := 0, 0
	injected := map[string]string{}
	for _, e := range all {
		switch e.Type {
		case "pbft_node_crashed":
			if e.Fields["signal"] == "SIGKILL" {
				crashed++
			}
		case "pbft_node_restarted":
			restarted++
		case "fault_injected":
			v, _ := e.Fields["verified"].(string)
			injected[e.Fields["kind"].(string)] = v
		case "fault_failed", "fault_skipped":
			t.Errorf("%s: %v", e.Type, e.Fields)
		}
	}
	if crashed != 1 || restarted != 1 {
		t.Errorf("journal: %d SIGKILL crashes and %d restarts, want 1 and 1 (%s)", crashed, restarted, types)
	}
	t.Logf("faults injected, verified: %v", injected)
	if v := injected["byzantine"]; !strings.Contains(v, "acted on") {
		t.Errorf("byzantine fault on a replica process: verified %q, want the messages it acted on", v)
	}
	if v := injected["partition"]; v == "" || strings.HasPrefix(v, "not verified") {
		t.Errorf("partition of a replica process: verified %q", v)
	}
	if _, ok := injected["drop"]; !ok {
		t.Errorf("no drop fault injected (%s)", types)
	}
}

// The planted bug: one replica process whose store corrupts what it puts
// (PBFTDivergeEnv). PBFT masks it (f = 1), so the clients see nothing
// wrong; the checkers, fed by the processes' event streams, catch it and
// name the replica.
func TestPBFTProcessDivergenceIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of real time")
	}
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, []string{PBFTDivergeEnv + "=node-3"}, "--config", pbftProcessesConfig(t, "  timeline: []\n"), "--state-dir", state)
	evs := waitEvent(t, state, "invariant_violation", 1, 30*time.Second)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	v := evs[0].Fields
	t.Logf("caught: %v", v)
	if inv := v["invariant"]; inv != "pbft_checkpoint" && inv != "pbft_agreement" {
		t.Errorf("violation %v, want pbft_checkpoint or pbft_agreement", inv)
	}
	if v["replica"] != "node-3" && v["other_replica"] != "node-3" {
		t.Errorf("violation names %v and %v, not the divergent node-3", v["replica"], v["other_replica"])
	}
}
