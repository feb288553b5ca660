package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// balloons lists the disk fault files under state.
func balloons(state string) []string {
	var out []string
	_ = filepath.WalkDir(state, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), ".soakd-balloon") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestResourceFaultsAndKill9: cpu, memory and disk faults (a balloon and
// an io child) in force while Raft runs under load; kill -9 of soakd
// leaves no child behind; the resumed run removes the balloons the dead
// one left, re-applies the faults for their remaining time, reverts them
// (no child, no balloon left), and no invariant breaks.
func TestResourceFaultsAndKill9(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("about 20 s of real time")
	}
	cfg := raftConfig(t, `
load:
  raft: {ramp_up: 0s, rate: 100}
faults:
  pause_when_unhealthy: false
  timeline:
    - {at: 1s, duration: 12s, kind: cpu, target: self, params: {cores: "1", load: 80%}}
    - {at: 1s, duration: 12s, kind: memory, target: self, params: {bytes: 64MiB}}
    - {at: 1s, duration: 12s, kind: disk, target: raft/follower, params: {max_fill: 64MiB}}
    - {at: 1s, duration: 12s, kind: disk, target: self, params: {mode: io, bytes: 8MiB}}
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	waitEvent(t, state, "fault_injected", 4, 30*time.Second)
	pid := d.cmd.Process.Pid
	kids := children(pid, "")
	for _, kind := range []string{"cpu", "memory", "io"} {
		if k := children(pid, kind); len(k) != 1 {
			t.Fatalf("%s children of soakd: %v, want one", kind, k)
		}
	}
	left := balloons(state)
	if len(left) != 2 {
		t.Fatalf("disk fault files: %v, want a balloon and an io file", left)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(10 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for _, k := range kids {
		for syscall.Kill(k, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("child %d outlived soakd's kill -9", k)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	resumed := waitEvent(t, state, "fault_injected", 8, 30*time.Second)
	for _, e := range resumed[4:] {
		if r, _ := e.Fields["resumed"].(bool); !r {
			t.Fatalf("after kill -9: %+v, want the fault re-applied", e)
		}
	}
	for _, p := range left {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("balloon %s of the killed incarnation still there after the resume", p)
		}
	}
	if n := len(children(d2.cmd.Process.Pid, "")); n != 3 {
		t.Errorf("%d children after the resume, want cpu, memory and io", n)
	}
	waitEvent(t, state, "fault_reverted", 4, 30*time.Second)
	if kids := children(d2.cmd.Process.Pid, ""); len(kids) != 0 {
		t.Fatalf("children still running after the revert: %v", kids)
	}
	if b := balloons(state); len(b) != 0 {
		t.Fatalf("disk fault files after the revert: %v", b)
	}
	fleetClean(t, d2)
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, types := journalTypes(t, state); strings.Contains(types, "invariant_violation") ||
		strings.Contains(types, "fault_skipped") || strings.Contains(types, "fault_failed") {
		t.Fatalf("journal: %s", types)
	}
}
