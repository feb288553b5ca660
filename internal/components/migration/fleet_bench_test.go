package migration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFleet: n guests of 16 MiB, each migrated over and over by its
// own worker (n migrations in flight), over max(4, n/4) hosts (a host
// takes at most 16 arriving at once). It reports
// migrations per second, CPU per migration and the Go heap per guest: the
// cost per migration should stay flat as the fleet grows.
func BenchmarkFleet(b *testing.B) {
	for _, own := range []string{"none", "raft"} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("ownership=%s/guests=%d", own, n), func(b *testing.B) { benchFleet(b, own, n) })
		}
	}
}

// benchFleet: with ownership raft, every migration also claims its
// guest's record in a 3-node Raft cluster (fsync'd log) before it resumes.
func benchFleet(b *testing.B, own string, n int) {
	cfg := config.Default()
	m := &cfg.Components.Migration
	m.Hosts, m.Guests, m.GuestMemory, m.Streams = max(4, n/4), n, 16<<20, 2
	m.DirtyRate, m.XBZRLECache = config.Rate(1<<20), 4<<20
	m.Ownership = own
	// Warnings (a refused stream, a slow store) explain failures.
	deps := components.Deps{Config: cfg, Seed: 1,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if own == "raft" {
		kv := startRaft(b, cfg, b.TempDir())
		deps.Peer = func(string) (components.Component, bool) { return kv, true }
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := New(deps)
	if err != nil {
		b.Fatal(err)
	}
	cl := c.(*Cluster)
	if err := cl.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer cl.Stop(context.Background())
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	const rounds = 3
	var failed int
	var firstErr error
	var mu sync.Mutex
	cpu0, t0 := cpuTime(), time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for g := range n {
			wg.Go(func() {
				for range rounds {
					if r := cl.Do(context.Background(), components.Op{Name: "migrate", Key: fmt.Sprint("k", g)}); r.Outcome != components.OutcomeOK {
						mu.Lock()
						failed++
						if firstErr == nil {
							firstErr = r.Err
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
	}
	total := float64(b.N * n * rounds)
	el := time.Since(t0)
	if failed > 0 {
		b.Fatalf("%d of %.0f migrations failed, first: %v", failed, total, firstErr)
	}
	b.ReportMetric(total/el.Seconds(), "migrations/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/total, "cpu_ms/migration")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/1024/float64(n), "heap_KiB/guest")
}
