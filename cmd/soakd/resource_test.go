package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stressChildren are the pids of `soakd stress` processes whose parent is
// ppid.
func stressChildren(t *testing.T, ppid int) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "stress\x00cpu") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestCPUFaultAndKill9: a cpu fault burns in a child process while Raft
// runs under load; kill -9 of soakd leaves no burner behind; the resumed
// run re-applies the fault for its remaining time, reverts it, and no
// invariant breaks.
func TestCPUFaultAndKill9(t *testing.T) {
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
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	waitEvent(t, state, "fault_injected", 1, 30*time.Second)
	kids := stressChildren(t, d.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("burner children of soakd: %v, want one", kids)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(10 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(kids[0], 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("burner %d outlived soakd's kill -9", kids[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	resumed := waitEvent(t, state, "fault_injected", 2, 30*time.Second)
	if r, _ := resumed[1].Fields["resumed"].(bool); !r {
		t.Fatalf("after kill -9: %+v, want the cpu fault re-applied", resumed[1])
	}
	if kids := stressChildren(t, d2.cmd.Process.Pid); len(kids) != 1 {
		t.Fatalf("burner children after the resume: %v", kids)
	}
	waitEvent(t, state, "fault_reverted", 1, 30*time.Second)
	if kids := stressChildren(t, d2.cmd.Process.Pid); len(kids) != 0 {
		t.Fatalf("burner still running after the revert: %v", kids)
	}
	fleetClean(t, d2)
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, types := journalTypes(t, state); strings.Contains(types, "invariant_violation") || strings.Contains(types, "fault_skipped") {
		t.Fatalf("journal: %s", types)
	}
}
