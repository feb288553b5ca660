package leakcheck

import (
	"fmt"
	"testing"
	"time"
)

func TestResidueCountsWhatFaultsLeaveBehind(t *testing.T) {
	tr := NewResidueTracker(30 * time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	goroutines := 100.0
	now := t0
	var settled []FaultResidue // each injection's own residue, as journaled
	feed := func(n int) {
		for range n {
			now = now.Add(5 * time.Second)
			settled = append(settled, tr.Observe(Reading{T: now, Goroutines: goroutines, HeapLive: 50 << 20, GCCycles: 1, FDs: 10, RSS: 100 << 20, Threads: 8})...)
		}
	}
	feed(10)
	// "crash" leaves 20 goroutines behind each time; "delay" leaves nothing.
	for i := range 3 {
		tr.FaultInjected("c", "crash")
		goroutines += 50 // while the fault is active
		feed(4)
		goroutines -= 30 // revert frees only part
		tr.FaultReverted("c", "crash")
		feed(4) // not yet settled: 20 s < 30 s settle
		if i == 0 && len(tr.Residues()) != 0 {
			t.Fatal("judged before the settle time")
		}
		feed(8)

		tr.FaultInjected("d", "delay")
		feed(4)
		tr.FaultReverted("d", "delay")
		feed(12)
	}
	res := tr.Residues()
	if len(res) != 2 || res[0].Kind != "crash" || res[0].Injections != 3 || res[0].WithResidue != 3 {
		t.Fatalf("residues = %+v", res)
	}
	if got := res[0].TotalResidue[SignalGoroutines]; got != 60 {
		t.Fatalf("crash total goroutine residue = %v, want 60", got)
	}
	if res[1].Kind != "delay" || res[1].WithResidue != 0 || res[1].Injections != 3 {
		t.Fatalf("delay = %+v", res[1])
	}
	if l := tr.Leaky(); len(l) != 1 || l[0].Kind != "crash" {
		t.Fatalf("leaky = %+v", l)
	}
	if len(settled) != 6 {
		t.Fatalf("%d injections judged one by one, want 6: %+v", len(settled), settled)
	}
	for i, fr := range settled {
		crash := i%2 == 0
		if fr.Kind != map[bool]string{true: "crash", false: "delay"}[crash] || fr.Left != crash || fr.Unmeasured ||
			(crash && fmt.Sprint(fr.Over) != "[goroutines]") ||
			fr.Residue[SignalGoroutines] != map[bool]float64{true: 20, false: 0}[crash] {
			t.Fatalf("injection %d judged %+v", i, fr)
		}
	}
}

// A disk fault whose balloon stays behind shows as residue of the disk
// level; one that cleans up does not.
func TestResidueOfDiskLevel(t *testing.T) {
	tr := NewResidueTracker(10 * time.Second)
	now := time.Unix(1_700_000_000, 0)
	used := float64(10 << 30)
	feed := func(n int) {
		for range n {
			now = now.Add(5 * time.Second)
			tr.Observe(Reading{T: now, Goroutines: 10, HeapLive: 1 << 20, GCCycles: 1, FDs: 10, RSS: 1 << 20, Threads: 8, DiskUsed: used})
		}
	}
	feed(6)
	tr.FaultInjected("a", "disk")
	used += 1 << 30
	feed(3)
	used -= 1 << 30 // the revert removed the balloon
	tr.FaultReverted("a", "disk")
	feed(10)
	tr.FaultInjected("b", "leaky-disk")
	used += 1 << 30 // and never removed
	feed(3)
	tr.FaultReverted("b", "leaky-disk")
	feed(10)
	for _, r := range tr.Residues() {
		left := r.WithResidue > 0
		if left != (r.Kind == "leaky-disk") || (left && r.LastResidue[LevelDiskUsed] != 1<<30) {
			t.Errorf("%s: %+v", r.Kind, r)
		}
	}
}

// A fault's level after its revert is not taken while another fault acts:
// the check waits for a quiet moment, and gives up (unmeasured) when none
// comes.
func TestResidueWaitsForQuiet(t *testing.T) {
	tr := NewResidueTracker(10 * time.Second)
	now := time.Unix(1_700_000_000, 0)
	fds := 10.0
	feed := func(n int) {
		for range n {
			now = now.Add(5 * time.Second)
			tr.Observe(Reading{T: now, Goroutines: 10, HeapLive: 1 << 20, GCCycles: 1, FDs: fds, RSS: 1 << 20, Threads: 8})
		}
	}
	feed(6)
	tr.FaultInjected("a", "clean")
	feed(2)
	tr.FaultReverted("a", "clean")
	tr.FaultInjected("b", "busy") // b holds 300 descriptors through a's settle time
	fds += 300
	feed(8)
	if len(tr.Residues()) != 0 {
		t.Fatalf("judged while another fault acts: %+v", tr.Residues())
	}
	fds -= 300
	tr.FaultReverted("b", "busy")
	feed(10)
	for _, r := range tr.Residues() {
		if r.Injections != 1 || r.WithResidue != 0 || r.LastResidue[SignalFDs] != 0 {
			t.Errorf("%s: %+v", r.Kind, r)
		}
	}
	if len(tr.Residues()) != 2 {
		t.Fatalf("residues %+v, want clean and busy judged", tr.Residues())
	}

	tr.FaultInjected("c", "never-quiet")
	feed(1)
	tr.FaultReverted("c", "never-quiet")
	tr.FaultInjected("d", "forever")
	feed(30) // 150 s > quietWait × 10 s
	found := false
	for _, r := range tr.Residues() {
		if r.Kind == "never-quiet" {
			found = true
			if r.Unmeasured != 1 || r.Injections != 0 {
				t.Errorf("never-quiet: %+v, want one unmeasured", r)
			}
		}
	}
	if !found {
		t.Error("never-quiet not reported")
	}
}
