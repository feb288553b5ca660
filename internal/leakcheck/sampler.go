package leakcheck

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/offheap"
)

// Signal names, as in DESIGN.md §3 and the soakd_leak_* metrics.
const (
	SignalHeap       = "heap_live_bytes"
	SignalGoroutines = "goroutines"
	SignalFDs        = "open_fds"
	SignalRSS        = "rss_bytes"
	SignalThreads    = "threads"
)

// Signals lists every sampled signal in a stable order.
var Signals = []string{SignalHeap, SignalGoroutines, SignalFDs, SignalRSS, SignalThreads}

// LevelDiskUsed is the used space of the state dir's filesystem: not a
// leak signal (other processes share the filesystem), but a level whose
// residue after a fault shows a disk fault that left a file behind.
const LevelDiskUsed = "disk_used_bytes"

// runtime/metrics names the sampler reads.
const (
	mHeapLive   = "/gc/heap/live:bytes"
	mGCCycles   = "/gc/cycles/total:gc-cycles"
	mGoroutines = "/sched/goroutines:goroutines"
	mObjects    = "/gc/heap/objects:objects"
	mProfiling  = "/memory/classes/profiling/buckets:bytes"
)

// Reading is one sample of every signal.
type Reading struct {
	T time.Time
	// HeapLive is the live heap after the last completed GC. HeapFresh says
	// a GC completed since the previous reading: the heap signal takes one
	// sample per GC cycle.
	HeapLive    float64
	HeapFresh   bool
	HeapObjects float64
	Goroutines  float64
	// FDs is open descriptors less those a fault holds on purpose
	// (offheap.HeldFDs).
	FDs float64
	// RSS is resident memory less the runtime's profiling buckets. Those
	// grow with every distinct stack the profiler sees, not with a leak in
	// the code under soak. They live outside the Go heap (runtime/metrics
	// files them under /memory/classes/profiling, not heap; measured here:
	// 1.4 MB of buckets beside 77 kB of live heap in an idle binary), so
	// they are subtracted from RSS, where they are counted. So is the
	// resident part of the memory soakd maps for the systems it soaks
	// (package offheap: migration guests and their delta caches).
	RSS      float64
	Threads  float64
	GCCycles uint64
	// DiskUsed is LevelDiskUsed (0: not sampled).
	DiskUsed float64
}

// Value returns the named signal; ok is false for a stale heap sample.
func (r Reading) Value(signal string) (v float64, ok bool) {
	switch signal {
	case SignalHeap:
		return r.HeapLive, r.HeapFresh
	case SignalGoroutines:
		return r.Goroutines, true
	case SignalFDs:
		return r.FDs, true
	case SignalRSS:
		return r.RSS, true
	case SignalThreads:
		return r.Threads, true
	}
	return 0, false
}

// Sampler reads the process's own signals from runtime/metrics and procfs.
// It reuses its buffers, so sampling allocates almost nothing over days.
//
// Goroutines and descriptors are read as the floor of the interval: Poll
// reads them between two Reads, and Read reports the least count it or a
// Poll saw. A leaked goroutine or descriptor stays and is in every poll; one
// serving an op in flight comes and goes and is not. So the floor keeps a
// leak whole and drops most of the load's jitter, as the post-GC heap drops
// the garbage between two GCs.
type Sampler struct {
	samples    []metrics.Sample
	proc       procfs.Proc
	lastCycles uint64

	mu         sync.Mutex // Poll runs beside Read
	pollSample []metrics.Sample
	polled     bool
	floorG     float64
	floorFDs   float64
	// DiskDir is a directory on the filesystem whose used space is read as
	// LevelDiskUsed ("": not read).
	DiskDir string
	// ForceGCWhenIdle runs a GC when none completed since the last reading,
	// so an idle process still yields one heap sample per interval instead
	// of a gap. A GC on an idle heap is cheap; on a busy one GCs happen on
	// their own and this never fires.
	ForceGCWhenIdle bool
}

// NewSampler opens /proc/self.
func NewSampler() (*Sampler, error) {
	p, err := procfs.Self()
	if err != nil {
		return nil, fmt.Errorf("leakcheck: procfs: %w", err)
	}
	return &Sampler{
		proc:            p,
		ForceGCWhenIdle: true,
		samples: []metrics.Sample{
			{Name: mHeapLive}, {Name: mGCCycles}, {Name: mGoroutines}, {Name: mObjects}, {Name: mProfiling},
		},
		pollSample: []metrics.Sample{{Name: mGoroutines}},
	}, nil
}

// Poll reads the goroutine and descriptor counts into the floor the next
// Read reports.
func (s *Sampler) Poll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.pollSample)
	if s.pollSample[0].Value.Kind() != metrics.KindUint64 {
		return nil // unsupported by this runtime: Read's own count stands
	}
	g := float64(s.pollSample[0].Value.Uint64())
	fds, err := s.openFDs()
	if err != nil {
		return err
	}
	if !s.polled {
		s.floorG, s.floorFDs, s.polled = g, fds, true
		return nil
	}
	s.floorG, s.floorFDs = min(s.floorG, g), min(s.floorFDs, fds)
	return nil
}

// openFDs is open descriptors less those a fault holds on purpose.
func (s *Sampler) openFDs() (float64, error) {
	fds, err := s.proc.FileDescriptorsLen()
	if err != nil {
		return 0, fmt.Errorf("leakcheck: /proc/self/fd: %w", err)
	}
	return float64(fds - offheap.HeldFDs()), nil
}

func (s *Sampler) readRuntime() {
	metrics.Read(s.samples)
}

func (s *Sampler) u64(i int) uint64 {
	if s.samples[i].Value.Kind() != metrics.KindUint64 {
		return 0 // metric unsupported by this runtime
	}
	return s.samples[i].Value.Uint64()
}

// Read samples every signal at now, goroutines and descriptors as the
// floor since the last Read.
func (s *Sampler) Read(now time.Time) (Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readRuntime()
	if s.ForceGCWhenIdle && s.u64(1) == s.lastCycles {
		runtime.GC()
		s.readRuntime()
	}
	r := Reading{
		T:           now,
		GCCycles:    s.u64(1),
		HeapLive:    float64(s.u64(0)),
		HeapObjects: float64(s.u64(3)),
		Goroutines:  float64(s.u64(2)),
	}
	r.HeapFresh = r.GCCycles != s.lastCycles
	s.lastCycles = r.GCCycles

	st, err := s.proc.Stat()
	if err != nil {
		return r, fmt.Errorf("leakcheck: /proc/self/stat: %w", err)
	}
	r.RSS = float64(st.ResidentMemory()) - float64(s.u64(4)) - float64(offheap.Resident())
	r.Threads = float64(st.NumThreads)
	if r.FDs, err = s.openFDs(); err != nil {
		return r, err
	}
	if s.polled {
		r.Goroutines, r.FDs = min(r.Goroutines, s.floorG), min(r.FDs, s.floorFDs)
		s.polled = false
	}
	if s.DiskDir != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(s.DiskDir, &st); err == nil {
			r.DiskUsed = float64(st.Blocks-st.Bfree) * float64(st.Bsize)
		}
	}
	return r, nil
}
