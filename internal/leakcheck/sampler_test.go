package leakcheck

import (
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/offheap"
)

var sink [][]byte

func TestSamplerSeesGrowth(t *testing.T) {
	s, err := NewSampler()
	if err != nil {
		t.Fatal(err)
	}
	debug.FreeOSMemory() // start from a scavenged heap so RSS can only grow
	r0, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r0.Goroutines < 1 || r0.FDs < 3 || r0.RSS < 1<<20 || r0.Threads < 1 || r0.HeapLive <= 0 {
		t.Fatalf("implausible reading %+v", r0)
	}
	// Grow every signal the sampler can see from inside.
	for range 64 {
		b := make([]byte, 256<<10)
		for i := range b {
			b[i] = 1 // resident, not just reserved
		}
		sink = append(sink, b)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	for range 10 {
		go func() { <-stop }()
	}
	defer close(stop)

	// A GC may have run mid-allocation; the sampler reports the last
	// completed cycle, so complete one after the allocations.
	runtime.GC()
	r1, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !r1.HeapFresh || r1.GCCycles == r0.GCCycles {
		t.Fatalf("heap sample not fresh: cycles %d → %d", r0.GCCycles, r1.GCCycles)
	}
	if r1.HeapLive-r0.HeapLive < 15<<20 {
		t.Fatalf("heap live grew %.0f bytes, want >= 15MiB of the 16MiB allocated", r1.HeapLive-r0.HeapLive)
	}
	if r1.Goroutines-r0.Goroutines < 10 {
		t.Fatalf("goroutines %v → %v", r0.Goroutines, r1.Goroutines)
	}
	if r1.FDs-r0.FDs < 1 {
		t.Fatalf("fds %v → %v", r0.FDs, r1.FDs)
	}
	if r1.RSS-r0.RSS < 8<<20 {
		t.Fatalf("rss %v → %v", r0.RSS, r1.RSS)
	}
	if v, ok := r1.Value(SignalHeap); !ok || v != r1.HeapLive {
		t.Fatal("Value(heap)")
	}
	runtime.KeepAlive(sink)
	sink = nil
}

// Goroutines and descriptors read as the floor of the interval: those that
// stay through every poll (a leak) count, those that came and went between
// two Reads (an op in flight) do not.
func TestSamplerFloorKeepsLeaksDropsTransients(t *testing.T) {
	s, err := NewSampler()
	if err != nil {
		t.Fatal(err)
	}
	r0, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hold := func(goroutines int) (release func()) {
		stop, started := make(chan struct{}), make(chan struct{}, goroutines)
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() { started <- struct{}{}; <-stop })
		}
		for range goroutines {
			<-started
		}
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		return func() { close(stop); wg.Wait(); f.Close() }
	}

	releaseTransient := hold(40)
	if err := s.Poll(); err != nil {
		t.Fatal(err)
	}
	releaseTransient()
	if err := s.Poll(); err != nil {
		t.Fatal(err)
	}
	r1, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r1.Goroutines-r0.Goroutines >= 40 || r1.FDs > r0.FDs {
		t.Fatalf("transients counted: goroutines %v → %v, fds %v → %v", r0.Goroutines, r1.Goroutines, r0.FDs, r1.FDs)
	}

	releaseLeak := hold(40)
	defer releaseLeak()
	for range 3 {
		if err := s.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	r2, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r2.Goroutines-r1.Goroutines < 40 || r2.FDs-r1.FDs < 1 {
		t.Fatalf("leak not counted: goroutines %v → %v, fds %v → %v", r1.Goroutines, r2.Goroutines, r1.FDs, r2.FDs)
	}
}

func TestSamplerWithoutForcedGCReportsStaleHeap(t *testing.T) {
	s, err := NewSampler()
	if err != nil {
		t.Fatal(err)
	}
	s.ForceGCWhenIdle = false
	runtime.GC()
	if _, err := s.Read(time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.HeapFresh {
		t.Skip("a GC ran between the two reads; nothing to check")
	}
	if _, ok := r.Value(SignalHeap); ok {
		t.Fatal("stale heap sample reported as valid")
	}
}

func TestSamplerForcesGCWhenIdle(t *testing.T) {
	s, err := NewSampler()
	if err != nil {
		t.Fatal(err)
	}
	r0, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !r1.HeapFresh || r1.GCCycles <= r0.GCCycles {
		t.Fatalf("idle second read: fresh=%v cycles %d → %d; want a forced GC", r1.HeapFresh, r0.GCCycles, r1.GCCycles)
	}
}

// TestRSSLeavesOutOffheapMemory: memory mapped for the soaked systems
// (offheap.Track: guests' RAM) does not count in the RSS signal, however
// much of it is resident.
func TestRSSLeavesOutOffheapMemory(t *testing.T) {
	const size = 128 << 20
	s, err := NewSampler()
	if err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	untrack := offheap.Track(b)
	defer untrack()
	before, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += 4096 {
		b[i] = 1
	}
	after, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if grew := after.RSS - before.RSS; grew > 16<<20 {
		t.Fatalf("RSS signal grew %.0f MiB with 128 MiB of tracked memory faulted in", grew/(1<<20))
	}
	untrack()
	untracked, err := s.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if grew := untracked.RSS - before.RSS; grew < 100<<20 {
		t.Fatalf("untracked, the same memory shows only %.0f MiB in the RSS signal", grew/(1<<20))
	}
}
