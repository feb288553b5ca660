package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/components/migration"
	"github.com/soakd/soakd/internal/config"
)

func newMigrateBenchCmd(stdout io.Writer) *cobra.Command {
	var f struct {
		image, size, compression, cache, dirtyRate, hotSet, pattern, limit string
		streams                                                            int
		seed                                                               uint64
		loopback                                                           bool
	}
	cmd := &cobra.Command{
		Use:   "migrate-bench",
		Short: "Migrate one guest once between two hosts on loopback and print one JSON line",
		Long: `Migrate one guest once, with soakd's pre-copy engine, between two fresh hosts
on loopback TCP (no fault fabric), and print one JSON line: outcome, total_ms,
downtime_ms, heartbeat_gap_ms, wire_bytes, raw_bytes, mb_per_s (guest bytes per
second of total time), wire_mb_per_s, rounds, throttle.

With --image the guest is exactly that raw image file (its size rounded down to
whole 4 KiB pages), so other hypervisors can migrate the same bytes and compare.
Without it the guest is --size bytes of the default mix (60% zero, 30% text-like,
10% random pages). --loopback adds loopback_mb_per_s: plain TCP with the same
stream count moving the same bytes, measured in the same run.`,
		Example: `  soakd migrate-bench --size 1GiB
  soakd migrate-bench --image guest.raw --streams 4 --compression s2
  soakd migrate-bench --size 512MiB --dirty-rate 64MiB/s --hot-set 10% --loopback`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			size, err := config.ParseByteSize(f.size)
			if err != nil {
				return usageError{fmt.Errorf("--size: %w", err)}
			}
			cache, err := config.ParseByteSize(f.cache)
			if err != nil {
				return usageError{fmt.Errorf("--xbzrle-cache: %w", err)}
			}
			rate, err := config.ParseRate(f.dirtyRate)
			if err != nil {
				return usageError{fmt.Errorf("--dirty-rate: %w", err)}
			}
			hot, err := config.ParsePercent(f.hotSet)
			if err != nil || hot <= 0 || hot > 1 {
				return usageError{fmt.Errorf("--hot-set: want a share in (0%%, 100%%], got %q", f.hotSet)}
			}
			limit, err := config.ParseDuration(f.limit)
			if err != nil || limit <= 0 {
				return usageError{fmt.Errorf("--downtime-limit: want a positive duration, got %q", f.limit)}
			}
			if f.streams < 1 || f.streams > config.MaxMigrationStreams {
				return usageError{fmt.Errorf("--streams: must be between 1 and %d", config.MaxMigrationStreams)}
			}
			switch f.pattern {
			case "sequential", "random", "once":
			default:
				return usageError{fmt.Errorf("--pattern: want sequential, random or once, got %q", f.pattern)}
			}
			o := migration.BenchOptions{Image: f.image, Size: int(size), Seed: f.seed,
				Content: migration.Content{Zero: 0.6, Text: 0.3, Random: 0.1},
				Work:    migration.Workload{Rate: rate.PerSecond(), HotSet: hot.Fraction(), Pattern: f.pattern},
				Params: migration.Params{Streams: f.streams, Codec: f.compression, CacheBytes: int(cache),
					StallTimeout: 30 * time.Second, Edge: f.image == "" && f.pattern != "random",
					Policy: migration.Policy{DowntimeLimit: limit.Std(), AutoConverge: true,
						ProgressTimeout: 30 * time.Second, CompletionTimeout: 10 * time.Minute}},
				Warm: 200 * time.Millisecond}
			r, err := migration.Bench(context.Background(), o)
			if err != nil {
				return err
			}
			out := map[string]any{}
			b, _ := json.Marshal(r)
			_ = json.Unmarshal(b, &out)
			if f.loopback {
				mbps, err := migration.LoopbackMBPerS(f.streams, r.Bytes)
				if err != nil {
					return err
				}
				out["loopback_mb_per_s"] = mbps
			}
			return json.NewEncoder(stdout).Encode(out)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", "raw image file to migrate (default: a generated guest of --size)")
	fl.StringVar(&f.size, "size", "1GiB", "guest size without --image")
	fl.IntVar(&f.streams, "streams", 4, "parallel TCP streams")
	fl.StringVar(&f.compression, "compression", "none", "none, s2, lz4 or zstd")
	fl.StringVar(&f.cache, "xbzrle-cache", "64MiB", "delta cache (0: off)")
	fl.StringVar(&f.dirtyRate, "dirty-rate", "0/s", "the guest's dirtying workload (0/s: idle)")
	fl.StringVar(&f.hotSet, "hot-set", "10%", "share of pages the workload dirties")
	fl.StringVar(&f.pattern, "pattern", "sequential", "sequential, random or once")
	fl.StringVar(&f.limit, "downtime-limit", "300ms", "predicted downtime at which to switch over")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the generated guest")
	fl.BoolVar(&f.loopback, "loopback", false, "also measure plain loopback TCP with the same streams and bytes")
	return cmd
}
