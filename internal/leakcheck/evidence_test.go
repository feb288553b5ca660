package leakcheck

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestGoroutineLeakProfileEvidence leaks on purpose: nothing can wake
	// a goroutine the runtime has declared leaked.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/soakd/soakd/internal/leakcheck.parkUnreachableForEvidence"))
}

var evidenceSink [][]byte

//go:noinline
func growTheHeapForEvidence() {
	// 16 MiB in 128 KiB objects: about 28 samples at the default 512 KiB
	// profile rate, so the estimate stays above half (with 32 objects it
	// fell under half in 22 of 300 runs; with 128, in 0 of 300).
	for range 128 {
		evidenceSink = append(evidenceSink, make([]byte, 128<<10))
	}
}

//go:noinline
func parkForEvidence(ch chan struct{}) { <-ch }

func TestEvidenceNamesTheCulprit(t *testing.T) {
	base, err := CaptureSnapshot(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	growTheHeapForEvidence()
	stop := make(chan struct{})
	defer close(stop)
	pprof.Do(context.Background(), pprof.Labels("component", "raft"), func(context.Context) {
		for range 25 {
			go parkForEvidence(stop)
		}
	})
	now, err := CaptureSnapshot(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		path, sum, err := WriteEvidence(dir, 2, EvidenceInput{
			AlertID:   time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC).Format("20060102T150405Z") + "-heap_live_bytes",
			AlertName: "SoakdHeapLeak", Signal: SignalHeap, RunID: "r1", FiredAt: time.Now(),
			Evaluation: Evaluation{Signal: SignalHeap, Slope: 1}, Threshold: 0.5, Base: base, Now: now,
		})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
		if top := sum.TopHeapSites[0]; !strings.HasSuffix(top.Function, "growTheHeapForEvidence") || top.DeltaBytes < 8<<20 { // 16 MiB allocated; heap profiles are sampled estimates
			t.Fatalf("top heap site %+v, want growTheHeapForEvidence with >= 8MiB", top)
		}
		if top := sum.TopStacks[0]; !strings.HasSuffix(top.Key, "parkForEvidence") || top.Delta != 25 {
			t.Fatalf("top goroutine stack %+v, want parkForEvidence +25", top)
		}
		var raft *StackGroup
		for i := range sum.ByComponent {
			if sum.ByComponent[i].Key == "raft" {
				raft = &sum.ByComponent[i]
			}
		}
		if raft == nil || raft.Then != 0 || raft.Now != 25 {
			t.Fatalf("component raft = %+v, want 0 → 25", raft)
		}
		for _, f := range append(sum.Files, "heap-diff.pb.gz") {
			if _, err := os.Stat(filepath.Join(path, f)); err != nil {
				t.Fatalf("bundle lacks %s: %v", f, err)
			}
		}
		txt, _ := os.ReadFile(filepath.Join(path, "summary.txt"))
		if !strings.Contains(string(txt), "growTheHeapForEvidence") {
			t.Fatalf("summary.txt does not name the culprit:\n%s", txt)
		}
	}
	// keep = 2: the oldest bundle is gone, the newest two remain.
	if _, err := os.Stat(paths[0]); !os.IsNotExist(err) {
		t.Fatalf("oldest bundle not pruned: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d entries in the evidence dir, want 2", len(entries))
	}
	evidenceSink = nil
}

func TestBaselinesPickTheWindowStart(t *testing.T) {
	b := NewBaselines(40 * time.Minute) // one every 10 minutes
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 10 {
		now := t0.Add(time.Duration(i) * 10 * time.Minute)
		if !b.Due(now) {
			t.Fatalf("not due at step %d", i)
		}
		b.Add(Snapshot{T: now})
		if b.Due(now.Add(time.Minute)) {
			t.Fatal("due a minute after a snapshot")
		}
	}
	last := t0.Add(90 * time.Minute)
	s, ok := b.At(last.Add(-40 * time.Minute))
	if !ok || !s.T.Equal(t0.Add(50*time.Minute)) {
		t.Fatalf("At(window start) = %v", s.T)
	}
	// Older than anything kept: the oldest there is.
	if s, _ := b.At(t0); !s.T.Equal(t0.Add(40 * time.Minute)) {
		t.Fatalf("At(before ring) = %v, want the oldest kept", s.T)
	}
}

//go:noinline
func parkUnreachableForEvidence() {
	ch := make(chan struct{})
	<-ch
}

func TestGoroutineLeakProfileEvidence(t *testing.T) {
	if pprof.Lookup("goroutineleak") == nil {
		t.Skip("runtime built without the goroutineleak profile (GOEXPERIMENT=goroutineleakprofile; make test sets it)")
	}
	base, err := CaptureSnapshot(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		go parkUnreachableForEvidence()
	}
	time.Sleep(50 * time.Millisecond) // let them park
	now, err := CaptureSnapshot(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, sum, err := WriteEvidence(t.TempDir(), 5, EvidenceInput{AlertID: "x-goroutines", AlertName: "SoakdGoroutineLeak",
		Signal: SignalGoroutines, Base: base, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if sum.GoroutineLeak == nil || sum.GoroutineLeak.Total < 7 || !strings.HasSuffix(sum.GoroutineLeak.Top[0].Key, "parkUnreachableForEvidence") {
		t.Fatalf("goroutineleak report = %+v, want 7 parkUnreachableForEvidence", sum.GoroutineLeak)
	}
}
