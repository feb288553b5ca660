package profiling

import (
	"bytes"
	"context"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/jonboulle/clockwork"

	pyroscope "github.com/grafana/pyroscope-go"
)

//go:noinline
func labelledBlocker(stop <-chan struct{}) { <-stop }

//go:noinline
func unlabelledBlocker(stop <-chan struct{}) { <-stop }

// componentOf returns the component labels of the samples whose stack
// contains fn.
func componentOf(prof *profile.Profile, fn string) (labels []string, found bool) {
	for _, s := range prof.Sample {
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && strings.HasSuffix(l.Function.Name, "."+fn) {
					found = true
					labels = append(labels, s.Label[ComponentLabel]...)
				}
			}
		}
	}
	return labels, found
}

func TestDoLabelsGoroutines(t *testing.T) {
	verifyNoLeaks(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	ready := make(chan struct{}, 2)
	Do(context.Background(), "raft", func(context.Context) {
		wg.Go(func() { ready <- struct{}{}; labelledBlocker(stop) })
	})
	wg.Go(func() { ready <- struct{}{}; unlabelledBlocker(stop) })
	<-ready
	<-ready

	check := func(what string, prof *profile.Profile) {
		t.Helper()
		if got, ok := componentOf(prof, "labelledBlocker"); !ok || !slices.Equal(got, []string{"raft"}) {
			t.Errorf("%s: goroutine started in Do: found %v, component labels %v; want [raft]", what, ok, got)
		}
		if got, ok := componentOf(prof, "unlabelledBlocker"); !ok || len(got) != 0 {
			t.Errorf("%s: goroutine started outside Do: found %v, component labels %v; want none", what, ok, got)
		}
	}

	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	check("live goroutine profile", prof)

	// The same through the local snapshot ring.
	p, err := New(Options{Config: profilingConfig("", time.Minute, 1<<30), Dir: t.TempDir(), Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SnapshotNow(); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(p.Snapshots(), func(s SnapshotInfo) bool { return s.Kind == "goroutine" })
	if i < 0 {
		t.Fatal("no goroutine snapshot")
	}
	f, err := os.Open(p.Snapshots()[i].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prof, err = profile.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	check("goroutine snapshot", prof)
}

func TestGoroutineLeakProfileSupport(t *testing.T) {
	sup := SupportsGoroutineLeakProfile()
	if sup != (pprof.Lookup("goroutineleak") != nil) {
		t.Fatal("SupportsGoroutineLeakProfile disagrees with pprof.Lookup")
	}
	if got := slices.Contains(snapshotKinds(), "goroutineleak"); got != sup {
		t.Errorf("snapshot kinds include goroutineleak: %v, supported: %v", got, sup)
	}
	if got := slices.Contains(pushProfileTypes(), pyroscope.ProfileGoroutineLeak); got != sup {
		t.Errorf("push types include goroutine_leak: %v, supported: %v", got, sup)
	}
	t.Logf("goroutineleak profile supported by this runtime: %v", sup)
}
