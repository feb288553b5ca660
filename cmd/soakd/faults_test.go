package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/run"
)

func raftConfig(t *testing.T, extra string) string {
	t.Helper()
	cfg := string(mustRead(t, testConfig(t, extra)))
	return writeTemp(t, strings.Replace(cfg, "raft: {enabled: false}", "raft: {enabled: true, nodes: 3}", 1))
}

func journalTypes(t *testing.T, state string) ([]run.Event, string) {
	t.Helper()
	evs, err := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return evs, strings.Join(types, ",")
}

func waitEvent(t *testing.T, state, typ string, n int, within time.Duration) []run.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs, _ := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, typ)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			_, all := journalTypes(t, state)
			t.Fatalf("no %d %s events within %v; journal: %s", n, typ, within, all)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCrashFaultBlastRadiusAndKill9 drives the real binary and Raft
// cluster: a crash of a follower, a second crash refused by the blast
// radius, kill -9 while the crash is active, and the resumed run
// re-applying the crash for its remaining time, then restarting the node
// from disk with all three nodes up and the history linearizable.
func TestCrashFaultBlastRadiusAndKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	cfg := raftConfig(t, `
load:
  raft: {ramp_up: 0s, rate: 200}
faults:
  blast_radius: {raft: 1}
  pause_when_unhealthy: false
  timeline:
    - {at: 3s, duration: 25s, kind: crash, target: raft/follower}
    - {at: 5s, duration: 10s, kind: crash, target: raft/leader}
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	inj := waitEvent(t, state, "fault_injected", 1, 30*time.Second)
	target, _ := inj[0].Fields["target"].(string)
	if !strings.HasPrefix(target, "raft/node-") {
		t.Fatalf("crash resolved to %q", target)
	}
	skipped := waitEvent(t, state, "fault_skipped", 1, 30*time.Second)
	if reason, _ := skipped[0].Fields["reason"].(string); !strings.Contains(reason, "blast radius") {
		t.Fatalf("second crash skipped for %q, want the blast radius", reason)
	}
	if up := d.scrape("soakd_raft_nodes_up"); up["soakd_raft_nodes_up"] != 2 {
		t.Fatalf("nodes up during the crash = %v, want 2", up)
	}
	// kill -9 while the crash is active (it ends at 28 s of soak time).
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(10 * time.Second)

	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	resumed := waitEvent(t, state, "fault_injected", 2, 30*time.Second)
	if r, _ := resumed[1].Fields["resumed"].(bool); !r || resumed[1].Fields["kind"] != "crash" {
		t.Fatalf("after kill -9: %+v, want the crash re-applied for its remaining time", resumed[1])
	}
	waitEvent(t, state, "fault_reverted", 1, 40*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for d2.scrape("soakd_raft_nodes_up")["soakd_raft_nodes_up"] != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the crashed node did not come back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := d2.status(); len(st.Components) != 1 || !st.Components[0].Healthy {
		t.Fatalf("raft after the revert: %+v", st.Components)
	}
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	_, types := journalTypes(t, state)
	t.Logf("journal: %s", types)
	if strings.Contains(types, "invariant_violation") {
		t.Fatalf("linearizability violation across crash and kill -9: %s", types)
	}
}
