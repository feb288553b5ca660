package main

import (
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/report"
	"github.com/soakd/soakd/internal/run"
)

// resumeConfig runs one timeline fault (a goroutine canary: no component
// needed) with checkpoints so rare that only the journal knows how far the
// run got before a kill -9.
func resumeConfig(t *testing.T, fault string) string {
	t.Helper()
	cfg := string(mustRead(t, testConfig(t, "faults:\n  random: ~\n  timeline:\n    - "+fault+"\n")))
	return writeTemp(t, strings.Replace(cfg, "checkpoint_interval: 200ms", "checkpoint_interval: 10m", 1))
}

func maxJournalElapsed(t *testing.T, state string) float64 {
	t.Helper()
	evs, _ := journalTypes(t, state)
	var m float64
	for _, e := range evs {
		m = max(m, e.ElapsedSeconds)
	}
	return m
}

// TestFaultRevertedBeforeKill9IsNotReapplied: soakd is SIGKILLed 200 ms
// after journaling a fault's revert, with its last checkpoint from before
// the fault. The revert survives the kill, the resumed run starts no
// earlier than the journal's last elapsed, and the fault runs once.
func TestFaultRevertedBeforeKill9IsNotReapplied(t *testing.T) {
	cfg := resumeConfig(t, "{at: 1s, duration: 2s, kind: leak, params: {resource: goroutines, rate: 60/min}}")
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	// The log line is written just before the journal append; waiting on
	// the journal file instead would only see events already flushed.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.stderr.String(), `msg="fault reverted"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no fault reverted within 20s\n%s", d.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(10 * time.Second)
	if rev, _ := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "fault_reverted"); len(rev) != 1 {
		t.Fatalf("fault_reverted events after kill -9: %d, want 1", len(rev))
	}
	ckpt, err := run.ReadState(state)
	if err != nil {
		t.Fatal(err)
	}
	last := maxJournalElapsed(t, state)
	if ckpt.ElapsedSeconds >= 3 {
		t.Fatalf("checkpoint at %.2fs is past the fault; the test needs an older one", ckpt.ElapsedSeconds)
	}

	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	if st := d2.status(); st.ElapsedSeconds < last {
		t.Fatalf("resumed at %.2fs, before the journal's last elapsed %.2fs (checkpoint %.2fs)", st.ElapsedSeconds, last, ckpt.ElapsedSeconds)
	}
	// Let the resumed run pass the fault's window (it ends at 3 s) from
	// wherever it resumed, then stop it.
	deadline = time.Now().Add(20 * time.Second)
	for d2.status().ElapsedSeconds < 5 {
		if time.Now().After(deadline) {
			t.Fatal("the resumed run did not reach 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// While it runs, the daemon serves the report so far at /report.
	resp, err := http.Get("http://" + d2.addr + "/report?format=json")
	if err != nil {
		t.Fatal(err)
	}
	var live report.Report
	err = json.NewDecoder(resp.Body).Decode(&live)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(live.Run.Incarnations) != 2 {
		t.Fatalf("GET /report: %s, %v, %d incarnations; want 200 and both incarnations", resp.Status, err, len(live.Run.Incarnations))
	}
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d2.stderr)
	}
	if inj, _ := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "fault_injected"); len(inj) != 1 {
		_, types := journalTypes(t, state)
		t.Fatalf("fault injected %d times, want once: %s", len(inj), types)
	}

	// The report covers both incarnations: the killed one and the one
	// stopped cleanly, with the canary counted once.
	out := t.TempDir()
	if stdout, stderr, code := soakd(t, "report", "--state-dir", state, "--out", out, "--format", "json"); code != 0 {
		t.Fatalf("soakd report: exit %d\n%s%s", code, stdout, stderr)
	}
	var r report.Report
	if err := json.Unmarshal(mustRead(t, filepath.Join(out, "report.json")), &r); err != nil {
		t.Fatal(err)
	}
	inc := r.Run.Incarnations
	if len(inc) != 2 || inc[0].Ended != "killed" || inc[1].Ended != "stopped" || inc[1].At < 3 {
		t.Fatalf("report incarnations %+v, want a killed one and a stopped one resumed past 3s", inc)
	}
	if r.Faults.Total != 1 || len(r.Faults.Rows) != 1 || r.Faults.Rows[0].EndedBy != "duration" {
		t.Fatalf("report faults %+v, want the canary once, reverted at the end of its duration", r.Faults)
	}
}

// TestCleanStopReappliesFaultForRemainingTime: SIGTERM while a fault is in
// force reverts it (why: shutdown); the restarted run re-applies it for
// the rest of its window, as after kill -9, instead of cutting it short.
func TestCleanStopReappliesFaultForRemainingTime(t *testing.T) {
	cfg := resumeConfig(t, "{at: 1s, duration: 30s, kind: leak, params: {resource: goroutines, rate: 60/min}}")
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	waitEvent(t, state, "fault_injected", 1, 20*time.Second)
	time.Sleep(time.Second)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	rev := waitEvent(t, state, "fault_reverted", 1, time.Second)
	if rev[0].Fields["why"] != "shutdown" {
		t.Fatalf("revert at stop: %+v", rev[0])
	}
	stopped, err := run.ReadState(state)
	if err != nil {
		t.Fatal(err)
	}

	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	inj := waitEvent(t, state, "fault_injected", 2, 10*time.Second)
	again := inj[1]
	dur, _ := again.Fields["duration_seconds"].(float64)
	// The fault ends at 31 s; the second incarnation resumed at the
	// stopped run's elapsed, so about 31 s minus that remains.
	if r, _ := again.Fields["resumed"].(bool); !r || again.Fields["id"] != inj[0].Fields["id"] ||
		math.Abs(dur-(31-stopped.ElapsedSeconds)) > 1.5 {
		t.Fatalf("after a clean stop at %.2fs: %+v, want the fault re-applied for the remaining %.2fs",
			stopped.ElapsedSeconds, again, 31-stopped.ElapsedSeconds)
	}
	if len(d2.status().ActiveFaults) != 1 {
		t.Fatalf("active faults after resume: %+v", d2.status().ActiveFaults)
	}
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
