package migration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/components"
)

// BenchOptions configures one measured migration between two fresh hosts
// on loopback, outside any run (soakd migrate-bench, make bench).
type BenchOptions struct {
	Image   string // a raw image file; empty: Size bytes of Content
	Size    int
	Content Content
	Seed    uint64
	Work    Workload // Rate 0: an idle guest
	Params  Params
	// Dial opens the streams (nil: straight loopback TCP).
	Dial components.Dialer
	// Warm lets the guest run this long before the migration starts.
	Warm time.Duration
}

// BenchResult is one migration's figures, as `soakd migrate-bench` prints.
type BenchResult struct {
	Outcome    string  `json:"outcome"`
	Bytes      int     `json:"guest_bytes"`
	TotalMS    float64 `json:"total_ms"`  // first round to resume on the destination
	VerifyMS   float64 `json:"verify_ms"` // the frozen source's whole-memory check, after the resume
	DowntimeMS float64 `json:"downtime_ms"`
	GapMS      float64 `json:"heartbeat_gap_ms"`
	WireBytes  int64   `json:"wire_bytes"`
	RawBytes   int64   `json:"raw_bytes"`
	MBPerS     float64 `json:"mb_per_s"` // guest bytes per second of total time
	WireMBPerS float64 `json:"wire_mb_per_s"`
	Rounds     int     `json:"rounds"`
	Throttle   float64 `json:"throttle"`
	// HeapMB is the Go heap in use after the guest exists and before the
	// migration, and HeapPeakMB the most it reached while it ran: guests
	// live outside the heap, so neither grows with the guest's size.
	HeapMB     float64 `json:"heap_mb"`
	HeapPeakMB float64 `json:"heap_peak_mb"`
	Error      string  `json:"error,omitempty"`
}

// Bench migrates one guest once from a host to another and reports.
func Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	clock := clockwork.NewRealClock()
	log := slog.New(slog.DiscardHandler)
	stall := 30 * time.Second
	src, dst := newHost("bench-src", clock, log, stall), newHost("bench-dst", clock, log, stall)
	if err := src.start(); err != nil {
		return BenchResult{}, err
	}
	defer src.close()
	if err := dst.start(); err != nil {
		return BenchResult{}, err
	}
	defer dst.close()
	g, err := newGuest("bench", o.Size, o.Seed, o.Content, o.Image, o.Work, clock)
	if err != nil {
		return BenchResult{}, err
	}
	size := g.Size()
	src.mu.Lock()
	src.guests[g.ID] = g
	src.mu.Unlock()
	g.resume(g.state())
	time.Sleep(o.Warm)
	dial := o.Dial
	if dial == nil {
		dial = components.DirectDialer
	}
	heap := heapInUse()
	peak := heap
	rep := migrate(ctx, 1, g, o.Params, func(ctx context.Context, _ int) (net.Conn, error) {
		return dial(ctx, src.ID, dst.ID, dst.Addr())
	}, dst.resolve, func(Round, Decision, int, time.Duration) { peak = max(peak, heapInUse()) })
	if rep.Moved() {
		_ = src.release(g.ID)
	}
	r := BenchResult{Outcome: rep.Outcome, Bytes: size, TotalMS: ms(rep.Total), VerifyMS: ms(rep.Verify), DowntimeMS: ms(rep.Downtime),
		GapMS: ms(rep.HeartbeatGap), WireBytes: rep.WireBytes, RawBytes: rep.RawBytes, Rounds: len(rep.Rounds),
		Throttle: rep.Throttle, HeapMB: float64(heap) / 1e6, HeapPeakMB: float64(max(peak, heapInUse())) / 1e6}
	if rep.Total > 0 {
		r.MBPerS = float64(r.Bytes) / 1e6 / rep.Total.Seconds()
	}
	r.WireMBPerS = rep.Bandwidth() / 1e6
	if rep.Err != nil {
		r.Error = rep.Err.Error()
	}
	if rep.Invariant != "" {
		return r, fmt.Errorf("migration: %s violated (pages %v)", rep.Invariant, rep.Mismatch)
	}
	return r, nil
}

// heapInUse is the Go heap's in-use bytes now (no GC forced).
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// LoopbackMBPerS measures plain loopback TCP with the given streams moving
// total bytes: the ceiling a migration is compared against, in the same
// process and run.
func LoopbackMBPerS(streams, total int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	defer func() {
		_ = ln.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			})
		}
	})
	per := total / streams
	buf := make([]byte, 256<<10)
	start := time.Now()
	errs := make(chan error, streams)
	for range streams {
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for sent := 0; sent < per; sent += len(buf) {
				if _, err := c.Write(buf); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return float64(per*streams) / 1e6 / time.Since(start).Seconds(), nil
}
