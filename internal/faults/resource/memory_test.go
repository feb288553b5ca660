package resource

import (
	"context"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

func TestMemoryParams(t *testing.T) {
	for _, bad := range []map[string]string{
		{"bytes": "0"}, {"bytes": "lots"}, {"bytes": "95%"}, {"bytes": "0%"}, {"mode": "swap"},
		{"rate": "fast"}, {"rate": "0MiB/s"}, {"mode": "gomemlimit", "rate": "1MiB/s"},
		{"mode": "gomemlimit", "bytes": "1MiB"}, {"size": "1GiB"},
	} {
		if err := Memory().Validate(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	for _, good := range []map[string]string{
		{}, {"bytes": "512MiB"}, {"bytes": "20%"}, {"bytes": "64MiB", "rate": "64MiB/s"},
		{"mode": "gomemlimit"}, {"mode": "gomemlimit", "bytes": "150%"}, {"mode": "gomemlimit", "bytes": "64MiB"},
	} {
		if err := Memory().Validate(good); err != nil {
			t.Errorf("%v: %v", good, err)
		}
	}
	c := config.Default()
	if err := Memory().Bounds(c, map[string]string{"bytes": "3GiB"}); err == nil || !strings.Contains(err.Error(), "max_memory") {
		t.Errorf("3GiB over max_memory 2GiB: %v", err)
	}
	if err := Memory().Bounds(c, map[string]string{"mode": "gomemlimit", "bytes": "3GiB"}); err != nil {
		t.Errorf("a Go memory limit is not held memory: %v", err)
	}
}

func memEnv(floor, maxMemory int64) faults.Env {
	c := config.Default()
	c.Faults.Resource.MemoryFloor = config.ByteSize(floor)
	c.Faults.Resource.MaxMemory = config.ByteSize(maxMemory)
	return faults.Env{Config: c}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs after the revert", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A memory child holds what it was asked (its RSS, verified by Inject and
// again here), and is gone after the revert.
func TestMemoryHoldsAndReverts(t *testing.T) {
	for _, params := range []map[string]string{{"bytes": "64MiB"}, {"bytes": "48MiB", "rate": "96MiB/s"}} {
		in, err := Memory().New(memEnv(256<<20, 1<<30))
		if err != nil {
			t.Fatal(err)
		}
		revert, err := in.Inject(context.Background(), "self", params)
		if err != nil {
			t.Fatalf("%v: %v", params, err)
		}
		pid := in.(*memoryInjector).pid
		rss, err := procRSS(pid)
		if err != nil || rss < 16<<20 {
			t.Errorf("%v: child RSS %d (%v)", params, rss, err)
		}
		if err := revert(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pid)
	}
}

// The floor wins: a floor above what is available refuses the fault, and
// a size above max_memory is cut to it.
func TestMemoryFloorAndBound(t *testing.T) {
	avail, err := memAvailable()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := Memory().New(memEnv(avail+(1<<30), 1<<30))
	if _, err := in.Inject(context.Background(), "self", map[string]string{"bytes": "64MiB"}); err == nil ||
		!strings.Contains(err.Error(), "memory_floor") {
		t.Fatalf("floor above MemAvailable: %v", err)
	}
	in, _ = Memory().New(memEnv(0, 32<<20))
	revert, err := in.Inject(context.Background(), "self", map[string]string{"bytes": "50%"})
	if err != nil {
		t.Fatal(err)
	}
	pid := in.(*memoryInjector).pid
	if rss, _ := procRSS(pid); rss > 64<<20 {
		t.Errorf("max_memory 32MiB, child RSS %d", rss)
	}
	_ = revert(context.Background())
	waitGone(t, pid)
	if _, err := in.Inject(context.Background(), "raft/node-1", nil); err == nil {
		t.Error("a component target accepted")
	}
}

// The memory child gives memory back when MemAvailable falls below its
// floor: with a floor just under what is available now, it stops growing
// early and reports it.
func TestMemoryChildStopsAtFloor(t *testing.T) {
	avail, err := memAvailable()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- holdMemory(1<<30, 0, avail-40<<20, &out, stop) }()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "floor") || strings.Contains(out.String(), "full") {
		t.Fatalf("1GiB asked, 40MiB above the floor: reports %q", out.String())
	}
}

// gomemlimit sets soakd's Go memory limit, refuses a second squeeze, and
// restores the old limit on revert.
func TestGoMemLimitSqueezesAndRestores(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	in, _ := Memory().New(faults.Env{})
	revert, err := in.Inject(context.Background(), "self", map[string]string{"mode": "gomemlimit", "bytes": "64MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Errorf("limit %d, want 64MiB", got)
	}
	if _, err := in.Inject(context.Background(), "self", map[string]string{"mode": "gomemlimit"}); err == nil {
		t.Error("a second squeeze accepted")
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = revert(context.Background()) // idempotent
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d after the revert, want %d", got, before)
	}
}
