package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPBFTUnderByzantineFaults runs the real binary with the PBFT cluster
// under load beside Raft and migration: byzantine faults from the timeline (an equivocating primary,
// a silent backup) and from the random schedule, and the message-level
// kinds (duplicate, reorder, drop), are injected, verified and reverted; the history stays linearizable, no PBFT invariant breaks,
// and nothing says pbft is not built or skips a byzantine fault.
func TestPBFTUnderByzantineFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("about 30 s of real time")
	}
	cfg := string(mustRead(t, testConfig(t, `
load:
  pbft: {ramp_up: 0s, rate: 100, mix: {put: 0.4, get: 0.4, cas: 0.2}, keys: 50}
  raft: {ramp_up: 0s, rate: 50}
  migration: {interval: 2s}
faults:
  pause_when_unhealthy: false
  random: {mean_interval: 4s, duration: {min: 2s, max: 3s}, max_concurrent: 1, kinds: [byzantine]}
  timeline:
    - {at: 2s, duration: 5s, kind: byzantine, target: pbft/primary, params: {behavior: equivocate}}
    - {at: 9s, duration: 4s, kind: byzantine, target: pbft/backup, params: {behavior: twin}}
    - {at: 14s, duration: 3s, kind: duplicate, target: pbft/primary, params: {probability: 30%}}
    - {at: 14s, duration: 3s, kind: reorder, target: pbft/backup, params: {window: 4}}
    - {at: 14s, duration: 3s, kind: drop, target: pbft/backup, params: {probability: 2%}}
`)))
	// Beside Raft and migration, as in the default config.
	cfg = writeTemp(t, strings.NewReplacer(
		"pbft: {enabled: false}", "pbft: {enabled: true, replicas: 4}",
		"raft: {enabled: false}", "raft: {enabled: true, nodes: 3}",
		"migration: {enabled: false}", "migration: {enabled: true, hosts: 3, guests: 2, guest_memory: 16MiB}",
	).Replace(cfg))
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	evs := waitEvent(t, state, "fault_reverted", 7, 60*time.Second)
	time.Sleep(2 * time.Second)
	m := d.scrape("soakd_")
	for k, v := range m {
		switch {
		case strings.HasPrefix(k, "soakd_invariant_violations_total") && v != 0:
			t.Errorf("%s = %v", k, v)
		case strings.HasPrefix(k, `soakd_checks_total{checker="linearizability",component="pbft",result="illegal"}`) && v != 0:
			t.Errorf("linearizability: %v illegal windows", v)
		}
	}
	// Liveness after the last fault window is measured and reported.
	if _, ok := m[`soakd_pbft_recovery_seconds{phase="commit"}`]; !ok {
		t.Errorf("no recovery measured after the fault windows")
	}
	ok := m[`soakd_ops_total{component="pbft",op="put",outcome="ok"}`] + m[`soakd_ops_total{component="pbft",op="get",outcome="ok"}`]
	if ok < 100 {
		t.Errorf("only %v pbft puts and gets ok", ok)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	all, types := journalTypes(t, state)
	sources, kinds := map[string]int{}, map[string]int{}
	for _, e := range all {
		switch e.Type {
		case "fault_injected":
			kinds[e.Fields["kind"].(string)]++
			if e.Fields["kind"] == "byzantine" {
				sources[e.Fields["source"].(string)]++
			}
		case "fault_skipped", "fault_failed":
			// A random fault overlapping another byzantine one is skipped
			// by the blast radius, by design.
			if r, _ := e.Fields["reason"].(string); e.Fields["kind"] == "byzantine" && !strings.HasPrefix(r, "blast radius") {
				t.Errorf("%s: %v", e.Type, e.Fields)
			}
		case "invariant_violation":
			t.Logf("violation: %v", e.Fields)
		}
	}
	for _, k := range []string{"duplicate", "reorder", "drop"} {
		if !strings.Contains(types, "fault_injected") || kinds[k] == 0 {
			t.Errorf("no %s fault injected (journal: %s)", k, types)
		}
	}
	if sources["timeline"] < 2 || sources["random"] < 1 {
		t.Errorf("byzantine faults injected by source: %v (journal: %s)", sources, types)
	}
	if strings.Contains(d.stderr.String(), "not built") {
		t.Errorf("a component is not built:\n%s", d.stderr)
	}
	t.Logf("reverted %d faults; by source %v", len(evs), sources)
}
