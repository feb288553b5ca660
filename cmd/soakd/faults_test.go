package main

import (
	"encoding/json"
	"math"
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

	// Replay: a run configured with this journal plans exactly the faults
	// this run injected: kinds, resolved targets, offsets, durations. The
	// crash re-applied after kill -9 is the same fault, planned once.
	all, _ := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "fault_injected")
	var injected []run.Event
	seen := map[any]bool{}
	for _, e := range all {
		if !seen[e.Fields["id"]] {
			seen[e.Fields["id"]] = true
			injected = append(injected, e)
		}
	}
	if len(injected) == len(all) {
		t.Fatalf("no fault was re-applied after kill -9: %d injections", len(all))
	}
	replayCfg := raftConfig(t, "faults:\n  random: ~\n  replay: "+filepath.Join(state, "journal.jsonl")+"\n")
	out, stderr, code := soakd(t, "plan", "--config", replayCfg, "--format", "json")
	var doc struct {
		Faults []planEntry `json:"faults"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("plan with replay: exit %d %s %s", code, out, stderr)
	}
	if len(doc.Faults) != len(injected) {
		t.Fatalf("replay plans %d faults, the run injected %d", len(doc.Faults), len(injected))
	}
	for i, e := range injected {
		p := doc.Faults[i]
		if p.Kind != e.Fields["kind"] || p.Target != e.Fields["target"] || p.Source != "replay" ||
			math.Abs(p.OffsetSeconds-e.ElapsedSeconds) > 1e-6 || math.Abs(p.DurationSeconds-e.Fields["duration_seconds"].(float64)) > 1e-6 {
			t.Fatalf("replayed fault %d = %+v, journal %+v", i, p, e)
		}
	}
}

// opMean returns the mean raft op latency and count from /metrics.
func opMean(d *proc) (sum, count float64) {
	for k, v := range d.scrape("soakd_op_duration_seconds_") {
		if !strings.Contains(k, `component="raft"`) {
			continue
		}
		switch {
		case strings.HasPrefix(k, "soakd_op_duration_seconds_sum"):
			sum += v
		case strings.HasPrefix(k, "soakd_op_duration_seconds_count"):
			count += v
		}
	}
	return sum, count
}

// TestNetworkFaultsOnRaft: isolating the leader elects a new one on the
// majority side while the old one's commit index stands still; healing
// leaves one leader and a clean linearizability check; a delay on the
// leader's links raises operation latency by about the delay and its
// revert removes it.
func TestNetworkFaultsOnRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	cfg := raftConfig(t, `
load:
  raft: {ramp_up: 0s, rate: 200}
faults:
  pause_when_unhealthy: false
  timeline:
    - {at: 5s, duration: 12s, kind: partition, target: raft/leader, params: {mode: isolate}}
    - {at: 30s, duration: 12s, kind: delay, target: raft/leader, params: {latency: 100ms, jitter: 0ms}}
    - {at: 44s, duration: 10s, kind: blackhole, target: raft/follower}
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	// Baseline before the partition at 5 s (the journal is read up to 1 s
	// late, by which time the new leader may already be elected).
	changes0 := d.scrape("soakd_raft_leader_changes_total")["soakd_raft_leader_changes_total"]
	inj := waitEvent(t, state, "fault_injected", 1, 30*time.Second)
	old := strings.TrimPrefix(inj[0].Fields["target"].(string), "raft/")
	commitOld := func() float64 { return d.scrape("soakd_raft_commit_index")[`soakd_raft_commit_index{node="`+old+`"}`] }
	c0 := commitOld()
	time.Sleep(6 * time.Second)
	m := d.scrape("soakd_raft_")
	if m["soakd_raft_leader_changes_total"] <= changes0 {
		t.Errorf("no leader change while %s was isolated", old)
	}
	if c1 := commitOld(); c1 > c0+1 {
		t.Errorf("isolated old leader %s committed: %v → %v", old, c0, c1)
	}
	var others float64
	for k, v := range m {
		if strings.HasPrefix(k, "soakd_raft_commit_index{") && !strings.Contains(k, old) {
			others = max(others, v)
		}
	}
	if others <= c0 {
		t.Errorf("majority side did not commit: %v vs %v", others, c0)
	}
	waitEvent(t, state, "fault_reverted", 1, 30*time.Second)

	// Delay: mean latency over the delayed stretch against the stretch before.
	s0, n0 := opMean(d)
	waitEvent(t, state, "fault_injected", 2, 30*time.Second)
	s1, n1 := opMean(d)
	time.Sleep(10 * time.Second)
	s2, n2 := opMean(d)
	waitEvent(t, state, "fault_reverted", 2, 30*time.Second)
	s3, n3 := opMean(d)
	// Blackhole on a follower: its commit index stops while the others go on.
	bh := waitEvent(t, state, "fault_injected", 3, 30*time.Second)
	victim := strings.TrimPrefix(bh[2].Fields["target"].(string), "raft/")
	commitOf := func() (v, rest float64) {
		for k, x := range d.scrape("soakd_raft_commit_index") {
			if strings.Contains(k, `"`+victim+`"`) {
				v = x
			} else {
				rest = max(rest, x)
			}
		}
		return v, rest
	}
	time.Sleep(time.Second)
	v0, r0 := commitOf()
	time.Sleep(5 * time.Second)
	v1, r1 := commitOf()
	if v1 > v0+1 || r1 <= r0 {
		t.Errorf("blackholed %s commit %v → %v while the others went %v → %v", victim, v0, v1, r0, r1)
	}
	s4, n4 := opMean(d)
	before, during, after := (s1-s0)/(n1-n0), (s2-s1)/(n2-n1), (s4-s3)/(n4-n3)
	t.Logf("mean raft op latency: before %.1f ms, delayed %.1f ms, after %.1f ms", before*1e3, during*1e3, after*1e3)
	if during-before < 0.08 || during-before > 0.5 {
		t.Errorf("delay of 100 ms raised mean latency by %.1f ms", (during-before)*1e3)
	}
	if after > before+0.03 {
		t.Errorf("latency after the revert %.1f ms, before %.1f ms", after*1e3, before*1e3)
	}
	if fails, _ := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "fault_failed"); len(fails) > 0 {
		t.Errorf("fault_failed: %+v", fails)
	}
	waitEvent(t, state, "fault_reverted", 3, 30*time.Second)
	time.Sleep(32 * time.Second) // let the checker judge the windows through the faults
	m = d.scrape("soakd_")
	if ok := m[`soakd_checks_total{checker="linearizability",component="raft",result="ok"}`]; ok == 0 {
		t.Error("no linearizability window judged")
	}
	if bad := m[`soakd_checks_total{checker="linearizability",component="raft",result="illegal"}`]; bad != 0 {
		t.Errorf("%v illegal windows", bad)
	}
	if st := d.status(); !st.Components[0].Healthy {
		t.Errorf("raft unhealthy after healing: %+v", st.Components[0])
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
