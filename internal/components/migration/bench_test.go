package migration

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/fabric"
)

// benchParams are the defaults a migration runs with.
func benchParams(codec string) Params {
	return Params{Streams: 4, Codec: codec, CacheBytes: 64 << 20, StallTimeout: 30 * time.Second,
		Policy: Policy{DowntimeLimit: 300 * time.Millisecond, AutoConverge: true, ProgressTimeout: 30 * time.Second,
			CompletionTimeout: 5 * time.Minute}}
}

var defaultMix = Content{Zero: 0.6, Text: 0.3, Random: 0.1}

// BenchmarkMigrate1GiB: a 1 GiB guest of the default mix, idle and
// dirtying, per codec, against plain loopback TCP with the same streams
// measured in the same run. Run with -benchtime=1x (make bench).
func BenchmarkMigrate1GiB(b *testing.B) {
	const size = 1 << 30
	loop, err := LoopbackMBPerS(4, size)
	if err != nil {
		b.Fatal(err)
	}
	for _, work := range []struct {
		name string
		w    Workload
	}{{"idle", Workload{}}, {"dirtying", Workload{Rate: 64 << 20, HotSet: 0.1, Pattern: "sequential"}}} {
		for _, codec := range []string{"none", "s2", "lz4", "zstd"} {
			b.Run(fmt.Sprintf("%s/%s", work.name, codec), func(b *testing.B) {
				var r BenchResult
				for b.Loop() {
					var err error
					r, err = Bench(context.Background(), BenchOptions{Size: size, Content: defaultMix, Seed: 1, Work: work.w,
						Params: benchParams(codec), Warm: 200 * time.Millisecond})
					if err != nil || r.Outcome != OutcomeOK {
						b.Fatalf("%+v %v", r, err)
					}
				}
				b.ReportMetric(r.TotalMS, "total_ms")
				b.ReportMetric(r.DowntimeMS, "downtime_ms")
				b.ReportMetric(r.WireMBPerS, "wire_MB/s")
				b.ReportMetric(r.MBPerS, "guest_MB/s")
				b.ReportMetric(loop, "loopback_MB/s")
				b.ReportMetric(r.WireMBPerS/loop, "wire/loopback")
				b.ReportMetric(float64(r.RawBytes)/float64(max(r.WireBytes, 1)), "raw/wire")
				b.ReportMetric(r.HeapPeakMB, "heap_peak_MB")
			})
		}
	}
}

// BenchmarkWireVsLoopback: an idle guest of random pages, so every page
// travels raw and the migration's wire rate is comparable with plain
// loopback TCP on the same number of streams, measured in the same run.
func BenchmarkWireVsLoopback(b *testing.B) {
	const size = 512 << 20
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			p := benchParams("none")
			p.Streams = streams
			var r BenchResult
			var loop float64
			for b.Loop() {
				var err error
				if loop, err = LoopbackMBPerS(streams, size); err != nil {
					b.Fatal(err)
				}
				r, err = Bench(context.Background(), BenchOptions{Size: size, Content: Content{Random: 1}, Seed: 1, Params: p})
				if err != nil || r.Outcome != OutcomeOK {
					b.Fatalf("%+v %v", r, err)
				}
			}
			b.ReportMetric(r.WireMBPerS, "wire_MB/s")
			b.ReportMetric(loop, "loopback_MB/s")
			b.ReportMetric(r.WireMBPerS/loop, "wire/loopback")
		})
	}
}

// BenchmarkCappedLink: a link capped at 128 MiB/s (the fabric's bandwidth
// fault) and a guest dirtying 256 MiB/s, twice the cap. With the delta
// cache the re-sent pages shrink to deltas; without it, auto-converge has
// to throttle the guest. Both must converge within the downtime limit.
func BenchmarkCappedLink(b *testing.B) {
	const size = 512 << 20
	for _, cache := range []int{64 << 20, 0} {
		b.Run(fmt.Sprintf("xbzrle_cache=%dMiB", cache>>20), func(b *testing.B) {
			f := fabric.New(slog.New(slog.DiscardHandler))
			defer f.Close()
			if _, err := f.Bandwidth(fabric.Isolate("bench-src"), 128<<20); err != nil {
				b.Fatal(err)
			}
			p := benchParams("none")
			p.CacheBytes = cache
			p.Policy.ProgressTimeout = time.Minute
			var r BenchResult
			for b.Loop() {
				var err error
				r, err = Bench(context.Background(), BenchOptions{Size: size, Content: defaultMix, Seed: 1, Dial: f.Dialer(),
					Work: Workload{Rate: 256 << 20, HotSet: 0.1, Pattern: "random"}, Params: p, Warm: 200 * time.Millisecond})
				if err != nil || r.Outcome != OutcomeOK {
					b.Fatalf("did not converge: %+v %v", r, err)
				}
			}
			// A figure, not an assertion: a loaded machine stretches it.
			if r.DowntimeMS > float64(p.Policy.DowntimeLimit/time.Millisecond) {
				b.Logf("downtime %.0f ms over the %v limit", r.DowntimeMS, p.Policy.DowntimeLimit)
			}
			b.ReportMetric(r.TotalMS, "total_ms")
			b.ReportMetric(r.DowntimeMS, "downtime_ms")
			b.ReportMetric(float64(r.Rounds), "rounds")
			b.ReportMetric(100*r.Throttle, "throttle_%")
			b.ReportMetric(r.WireMBPerS, "wire_MB/s")
		})
	}
}
