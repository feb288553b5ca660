package faults

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/run"
)

// incarnation is one daemon lifetime of a runner, journaling to a real run
// journal (the format Settled and ReplayPlan read) as the daemon does.
func incarnation(t *testing.T, path string, n int, timeline []config.TimedFault, start time.Duration) *harness {
	t.Helper()
	j, err := run.OpenJournal(path, run.JournalOptions{Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	settled, err := Settled(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, timeline, start)
	h.r.o.Settled = settled
	h.r.o.Event = func(typ string, f map[string]any) {
		h.ev.add(typ, f)
		if err := j.Append(typ, n, time.Duration(h.elapsed.Load()), f); err != nil {
			t.Error(err)
		}
	}
	return h
}

// TestCleanStopReappliesForRemainingTime: a fault cut short by a clean stop
// at 14 s is re-applied on resume until its end at 20 s, exactly as after
// kill -9; once reverted at its end it stays finished.
func TestCleanStopReappliesForRemainingTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	timeline := []config.TimedFault{tf(10*time.Second, 10*time.Second, "fake", "a")}
	h1 := incarnation(t, path, 1, timeline, 0)
	h1.at(10 * time.Second)
	h1.elapsed.Store(int64(14 * time.Second))
	if err := h1.r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h1.kind.calls(); got != "inject a,revert a" {
		t.Fatalf("first incarnation: %s", got)
	}

	h2 := incarnation(t, path, 2, timeline, 14*time.Second)
	h2.at(14 * time.Second)
	if got, ev := h2.kind.calls(), h2.ev.String(); got != "inject a" || ev != "fault_injected(resumed)" {
		t.Fatalf("after a clean stop: calls %q, events %q; want the fault re-applied", got, ev)
	}
	if a := h2.r.Active(); len(a) != 1 || a[0].Until.Sub(a[0].Since) != 6*time.Second {
		t.Fatalf("active = %+v, want 6s remaining", a)
	}
	h2.at(20 * time.Second)
	if got := h2.kind.calls(); got != "inject a,revert a" {
		t.Fatalf("calls = %s, want reverted at its end", got)
	}

	// kill -9 right after; the resumed elapsed (19 s, say) is inside the
	// window, but the fault is finished.
	h3 := incarnation(t, path, 3, timeline, 19*time.Second)
	h3.at(19 * time.Second)
	if got := h3.kind.calls(); got != "" {
		t.Fatalf("a finished fault was applied again: %s", got)
	}
}

// TestRevertedBeforeKill9IsNotReapplied: the fault is reverted at its end
// (15 s) and the daemon is killed before its next checkpoint; even if the
// run resumes inside the fault's window, the journaled revert keeps it
// from running twice, while a fault still active at the kill comes back.
func TestRevertedBeforeKill9IsNotReapplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	timeline := []config.TimedFault{tf(10*time.Second, 5*time.Second, "fake", "a"), tf(12*time.Second, 10*time.Second, "fake", "b")}
	h1 := incarnation(t, path, 1, timeline, 0)
	h1.at(10 * time.Second)
	h1.at(12 * time.Second)
	h1.at(15 * time.Second)
	if got := h1.kind.calls(); got != "inject a,inject b,revert a" {
		t.Fatalf("first incarnation: %s", got)
	}
	// kill -9: no Stop.
	h2 := incarnation(t, path, 2, timeline, 13*time.Second)
	h2.at(13 * time.Second)
	if got := h2.kind.calls(); got != "inject b" {
		t.Fatalf("after kill -9: %s, want only b re-applied", got)
	}
	_ = h2.r.Stop(context.Background())
}

func TestSettledReadsTheJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	if s, err := Settled(path); err != nil || len(s) != 0 {
		t.Fatalf("missing journal: %v, %v", s, err)
	}
	j, err := run.OpenJournal(path, run.JournalOptions{Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		typ    string
		fields map[string]any
	}{
		{"fault_injected", map[string]any{"id": "injected-only"}},
		{"fault_reverted", map[string]any{"id": "ended", "why": RevertDuration}},
		{"fault_reverted", map[string]any{"id": "stopped", "why": RevertShutdown}},
		{"fault_reverted", map[string]any{"id": "stopped-then-ended", "why": RevertShutdown}},
		{"fault_reverted", map[string]any{"id": "stopped-then-ended", "why": RevertDuration}},
		{"fault_skipped", map[string]any{"id": "refused", "reason": "blast radius"}},
		{"fault_failed", map[string]any{"id": "inject-failed", "phase": "inject"}},
		{"fault_failed", map[string]any{"id": "revert-failed", "phase": "revert"}},
	} {
		if err := j.Append(e.typ, 1, 0, e.fields); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"seq":9,"type":"fault_rever`) // torn tail
	f.Close()
	got, err := Settled(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"ended": true, "stopped-then-ended": true, "refused": true, "inject-failed": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("settled = %v, want %v", got, want)
	}
}

// TestReplayOfAResumedRunHasEachFaultOnce: a run killed while two faults
// were active re-applies both on resume; replaying its journal plans each
// fault once, at its first injection with its full duration.
func TestReplayOfAResumedRunHasEachFaultOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	timeline := []config.TimedFault{tf(10*time.Second, 10*time.Second, "fake", "a"), tf(12*time.Second, 5*time.Second, "fake", "b")}
	h1 := incarnation(t, path, 1, timeline, 0)
	h1.at(10 * time.Second)
	h1.at(12 * time.Second)
	// kill -9 at 14 s; the resumed run re-applies both.
	h2 := incarnation(t, path, 2, timeline, 14*time.Second)
	h2.at(14 * time.Second)
	if ev := h2.ev.String(); ev != "fault_injected(resumed),fault_injected(resumed)" {
		t.Fatalf("resumed events = %s", ev)
	}
	h2.at(17 * time.Second)
	h2.at(20 * time.Second)
	plan, err := ReplayPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range plan {
		got = append(got, p.Target+"@"+p.At.String()+"+"+p.Duration.String())
	}
	if s := strings.Join(got, ","); s != "a@10s+10s,b@12s+5s" {
		t.Fatalf("replayed plan = %s, want each fault once at its first injection", s)
	}
}
