package pbft

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/auth"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/config"
)

func benchCluster(b *testing.B, mode auth.Mode) *Cluster {
	b.Helper()
	cfg := config.Default()
	cfg.Components.PBFT.Replicas = 4
	c, err := New(components.Deps{Config: cfg, StateDir: b.TempDir(), Seed: 1, Metrics: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	cl := c.(*Cluster)
	cl.mode = mode
	if err := cl.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Stop(context.Background()) })
	return cl
}

// saturate runs workers closed-loop puts for d and returns ops/s.
func saturate(c *Cluster, workers int, d time.Duration) float64 {
	var ops atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := range workers {
		wg.Go(func() {
			ctx := components.WithClientID(context.Background(), w)
			for i := 0; time.Now().Before(end); i++ {
				octx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if c.Do(octx, components.Op{Name: "put", Key: fmt.Sprint("k", i%512), Value: []byte("v")}).Outcome == components.OutcomeOK {
					ops.Add(1)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	return float64(ops.Load()) / d.Seconds()
}

// BenchmarkThroughput: 4 replicas under closed-loop puts from 256
// clients, fault-free with MAC authenticators, with one silent backup, and
// with Ed25519 on every message; the ratios compare runs in one process.
func BenchmarkThroughput(b *testing.B) {
	const d = 5 * time.Second
	for _, tc := range []struct {
		name   string
		mode   auth.Mode
		silent bool
	}{{"macs", auth.MACs, false}, {"macs-silent-backup", auth.MACs, true}, {"signatures", auth.Signatures, false}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				c := benchCluster(b, tc.mode)
				if tc.silent {
					beh, _ := byzantine.New("silent", nil, 3, 4, 1)
					_ = c.SetBehavior("node-4", beh)
				}
				b.ReportMetric(saturate(c, 256, d), "ops/s")
			}
		})
	}
}

// BenchmarkLatency: open-loop puts at 200 ops/s for 5 s; p50 and p99.
func BenchmarkLatency(b *testing.B) {
	for b.Loop() {
		c := benchCluster(b, auth.MACs)
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(5 * time.Millisecond)
		for i := range 1000 {
			<-tick.C
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(components.WithClientID(context.Background(), i), 5*time.Second)
				defer cancel()
				t0 := time.Now()
				if c.Do(ctx, components.Op{Name: "put", Key: fmt.Sprint("k", i%64), Value: []byte("v")}).Outcome == components.OutcomeOK {
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			})
		}
		tick.Stop()
		wg.Wait()
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatal("no op finished")
		}
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	}
}

// BenchmarkPrimaryCrash: under light load, the primary crashes; reported:
// the time to the first commit in the new view, next to twice the
// view-change timeout.
func BenchmarkPrimaryCrash(b *testing.B) {
	for b.Loop() {
		c := benchCluster(b, auth.MACs)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				ctx := components.WithClientID(context.Background(), w)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					octx, cancel := context.WithTimeout(ctx, 5*time.Second)
					c.Do(octx, components.Op{Name: "put", Key: fmt.Sprint("k", i%8), Value: []byte("v")})
					cancel()
				}
			})
		}
		time.Sleep(time.Second)
		prim, _ := c.Resolve("primary", 0)
		t0 := time.Now()
		_ = c.Crash(prim[0])
		n := c.nodes[(nodeIndex(prim[0])+1)%4]
		// Recovered: a backup is in a later view, out of the view change,
		// and has executed a batch since it got there.
		var recovered time.Duration
		entered := false
		var execAtEntry uint64
		for time.Since(t0) < 20*time.Second {
			_, st := n.state()
			if st.View > 0 && !st.InViewChange {
				if !entered {
					entered, execAtEntry = true, uint64(st.LastExecuted)
				} else if uint64(st.LastExecuted) > execAtEntry {
					recovered = time.Since(t0)
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if recovered == 0 {
			b.Fatal("no new view within 20 s")
		}
		b.ReportMetric(recovered.Seconds(), "recovery_s")
		b.ReportMetric(2*viewChangeTicks*tickInterval.Seconds(), "2x_vc_timeout_s")
	}
}
