package resource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/leakcheck"
)

// Memory modes: a child process holding resident memory, or soakd's own
// Go memory limit squeezed.
const (
	memoryModeRSS        = "rss"
	memoryModeGoMemLimit = "gomemlimit"
)

// memoryChunk is the step a memory child grows and shrinks by.
const memoryChunk = 16 << 20

// minGoMemLimit is the lowest Go memory limit a gomemlimit fault sets:
// below it the runtime's own overhead dominates.
const minGoMemLimit = 16 << 20

// memoryVerifyWithin bounds the wait for a memory child to reach its
// size (or the floor) before the fault counts as failed.
const memoryVerifyWithin = 30 * time.Second

// Memory is the "memory" fault kind. Mode rss (the default): a child
// process maps and touches `bytes` (a size, or a share of MemAvailable at
// injection), at once or growing at `rate`, and gives memory back whenever
// MemAvailable would fall below faults.resource.memory_floor; verified by
// the child's RSS. Mode gomemlimit: soakd's own Go memory limit is set to
// `bytes` (a size, or a share of soakd's live heap) to push its GC, and
// restored on revert.
func Memory() faults.Spec {
	return faults.Spec{
		Name: "memory",
		Params: []faults.Param{
			{Name: "bytes", Doc: "rss: size or share of MemAvailable to hold (default 10%); gomemlimit: the limit, a size or share of the live heap (default 125%)"},
			{Name: "rate", Doc: "rss: growth per time (e.g. 64MiB/s; default at once)"},
			{Name: "mode", Doc: "rss (a child holds memory, the default) or gomemlimit (squeeze soakd's Go memory limit)"},
		},
		Check: func(p map[string]string) error { _, err := parseMemory(p); return err },
		Bounds: func(c *config.Config, p map[string]string) error {
			m, err := parseMemory(p)
			if err == nil && m.mode == memoryModeRSS && m.bytes > c.Faults.Resource.MaxMemory.Bytes() {
				return faults.BadParam("bytes", "%s is above faults.resource.max_memory (%s)",
					config.ByteSize(m.bytes), c.Faults.Resource.MaxMemory)
			}
			return err
		},
		Self: true,
		// A squeezed Go memory limit shrinks soakd's RSS, and the revert
		// lets it grow back: a step, not a leak.
		Disturbs: []string{leakcheck.SignalRSS},
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"bytes": strconv.Itoa(5+rng.IntN(16)) + "%"}
		},
		New: func(env faults.Env) (faults.Injector, error) {
			return &memoryInjector{log: logger(env), bounds: bounds(env)}, nil
		},
	}
}

type memoryParams struct {
	mode  string
	bytes int64   // an absolute size, or 0 with share set
	share float64 // of MemAvailable (rss) or the live heap (gomemlimit)
	rate  float64 // bytes per second, 0: at once
}

func parseMemory(p map[string]string) (memoryParams, error) {
	m := memoryParams{mode: memoryModeRSS, share: 0.10}
	var errs []error
	if s, ok := p["mode"]; ok {
		if s != memoryModeRSS && s != memoryModeGoMemLimit {
			errs = append(errs, faults.BadParam("mode", "must be rss or gomemlimit, got %q", s))
		}
		m.mode = s
	}
	if m.mode == memoryModeGoMemLimit {
		m.share = 1.25
	}
	if s, ok := p["bytes"]; ok {
		if strings.HasSuffix(strings.TrimSpace(s), "%") {
			v, err := config.ParsePercent(s)
			switch {
			case err != nil || v.Fraction() <= 0:
				errs = append(errs, faults.BadParam("bytes", "must be a size or a share above 0%%, got %q", s))
			case m.mode == memoryModeRSS && v.Fraction() > 0.9:
				errs = append(errs, faults.BadParam("bytes", "a share of MemAvailable must be at most 90%%, got %q", s))
			}
			m.share = v.Fraction()
		} else {
			b, err := config.ParseByteSize(s)
			switch {
			case err != nil || b <= 0:
				errs = append(errs, faults.BadParam("bytes", "must be a size (512MiB) or a share (20%%), got %q", s))
			case m.mode == memoryModeGoMemLimit && b < minGoMemLimit:
				errs = append(errs, faults.BadParam("bytes", "a Go memory limit below %s starves the runtime, got %q", config.ByteSize(minGoMemLimit), s))
			}
			m.bytes, m.share = b.Bytes(), 0
		}
	}
	if s, ok := p["rate"]; ok {
		r, err := config.ParseRate(s)
		switch {
		case err != nil || r <= 0:
			errs = append(errs, faults.BadParam("rate", "must be a positive size per time (64MiB/s), got %q", s))
		case m.mode != memoryModeRSS:
			errs = append(errs, faults.BadParam("rate", "applies to mode rss only"))
		}
		m.rate = r.PerSecond()
	}
	return m, errors.Join(errs...)
}

type memoryInjector struct {
	log    *slog.Logger
	bounds config.ResourceBounds
	pid    int // the last child started, for tests

	// squeezed: a gomemlimit fault is in force. Two at once would restore
	// each other's limits out of order.
	mu       sync.Mutex
	squeezed bool
}

func (in *memoryInjector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	if target != "self" {
		return nil, fmt.Errorf("memory: target %q: want self (soakd's machine)", target)
	}
	m, err := parseMemory(params)
	if err != nil {
		return nil, err
	}
	if m.mode == memoryModeGoMemLimit {
		return in.squeeze(ctx, m)
	}
	avail, err := memAvailable()
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	size := m.bytes
	if size == 0 {
		size = int64(m.share * float64(avail))
	}
	size = min(size, in.bounds.MaxMemory.Bytes())
	floor := in.bounds.MemoryFloor.Bytes()
	if room := avail - floor; size > room {
		if room < memoryChunk {
			return nil, fmt.Errorf("memory: MemAvailable %s leaves no room above faults.resource.memory_floor %s",
				config.ByteSize(avail), config.ByteSize(floor))
		}
		size = room
	}
	args := []string{"memory", "--bytes", strconv.FormatInt(size, 10), "--floor", strconv.FormatInt(floor, 10)}
	if m.rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(m.rate, 'f', -1, 64))
	}
	c, err := startChild(args...)
	if err != nil {
		return nil, err
	}
	held, err := waitHeld(ctx, c, m.rate > 0)
	if err == nil {
		var rss int64
		if rss, err = procRSS(c.cmd.Process.Pid); err == nil && float64(rss) < 0.9*float64(held) {
			err = fmt.Errorf("memory: child RSS %s, want at least 90%% of the %s it holds", config.ByteSize(rss), config.ByteSize(held))
		}
	}
	if err != nil {
		_ = c.stop()
		return nil, err
	}
	in.pid = c.cmd.Process.Pid
	faults.Verified(ctx, fmt.Sprintf("child %d holds %s resident (target %s, floor %s)", in.pid, config.ByteSize(held), config.ByteSize(size), config.ByteSize(floor)))
	in.log.Info("memory fault verified", "pid", in.pid, "held", config.ByteSize(held), "target", config.ByteSize(size),
		"floor", config.ByteSize(floor))
	return func(context.Context) error { return c.stop() }, nil
}

// waitHeld waits for a memory child's report: "full N" (it holds its
// size), "floor N" (it stopped at the floor) or, growing at a rate, its
// first "held N". It returns N.
func waitHeld(ctx context.Context, c *child, growing bool) (int64, error) {
	timeout := time.NewTimer(memoryVerifyWithin)
	defer timeout.Stop()
	for {
		select {
		case <-c.progress:
		case <-c.done:
			err := c.err
			return 0, fmt.Errorf("memory: child exited: %v", err)
		case <-timeout.C:
			_ = c.stop()
			return 0, fmt.Errorf("memory: child did not reach its size within %v (last report %q)", memoryVerifyWithin, c.lastLine())
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		word, num, _ := strings.Cut(c.lastLine(), " ")
		n, _ := strconv.ParseInt(num, 10, 64)
		switch {
		case word == "floor" && n == 0:
			return 0, errors.New("memory: MemAvailable is already at faults.resource.memory_floor")
		case word == "full" || word == "floor" || (growing && word == "held" && n > 0):
			return n, nil
		}
	}
}

// squeeze sets soakd's Go memory limit; the revert restores the old one.
func (in *memoryInjector) squeeze(ctx context.Context, m memoryParams) (faults.Revert, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.squeezed {
		return nil, errors.New("memory: a gomemlimit fault is already in force")
	}
	limit := m.bytes
	if limit == 0 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		limit = max(int64(m.share*float64(s[0].Value.Uint64())), minGoMemLimit)
	}
	prev := debug.SetMemoryLimit(limit)
	if got := debug.SetMemoryLimit(-1); got != limit {
		debug.SetMemoryLimit(prev)
		return nil, fmt.Errorf("memory: Go memory limit reads %d after setting %d", got, limit)
	}
	in.squeezed = true
	faults.Verified(ctx, fmt.Sprintf("Go memory limit %s (was %s)", config.ByteSize(limit), config.ByteSize(prev)))
	in.log.Info("memory fault verified", "mode", memoryModeGoMemLimit, "limit", config.ByteSize(limit), "previous", prev)
	var once sync.Once
	return func(context.Context) error {
		once.Do(func() {
			debug.SetMemoryLimit(prev)
			in.mu.Lock()
			in.squeezed = false
			in.mu.Unlock()
		})
		return nil
	}, nil
}

// holdMemory is the memory child: it maps and touches memory up to size
// (at rate bytes per second, or at once), keeps MemAvailable above floor
// by giving chunks back, and reports "held N", "full N" or "floor N" on
// out after each change.
func holdMemory(size int64, rate float64, floor int64, out io.Writer, stop <-chan struct{}) error {
	var chunks [][]byte
	var held int64
	defer func() {
		for _, b := range chunks {
			_ = unix.Munmap(b)
		}
	}()
	page := unix.Getpagesize()
	start := time.Now()
	last := ""
	report := func(word string) {
		line := word + " " + strconv.FormatInt(held, 10)
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		avail, err := memAvailable()
		if err != nil {
			return err
		}
		allowed := size
		if rate > 0 {
			allowed = min(size, int64(rate*time.Since(start).Seconds())+memoryChunk)
		}
		switch next := min(memoryChunk, allowed-held); {
		case avail < floor && len(chunks) > 0:
			b := chunks[len(chunks)-1]
			chunks = chunks[:len(chunks)-1]
			held -= int64(len(b))
			_ = unix.Munmap(b)
			report("floor")
			continue
		case next > 0 && avail-next < floor:
			report("floor")
		case next > 0:
			b, err := unix.Mmap(-1, 0, int(next), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				return fmt.Errorf("stress memory: mmap: %w", err)
			}
			for i := 0; i < len(b); i += page {
				b[i] = 1 // fault the page in
			}
			chunks = append(chunks, b)
			held += next
			if held < size {
				report("held")
				continue
			}
			report("full")
		case held >= size:
			report("full")
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

// memAvailable is the kernel's estimate of memory available without
// swapping (/proc/meminfo MemAvailable).
func memAvailable() (int64, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, err
	}
	mi, err := fs.Meminfo()
	if err != nil {
		return 0, err
	}
	if mi.MemAvailableBytes == nil {
		return 0, errors.New("no MemAvailable in /proc/meminfo")
	}
	return int64(*mi.MemAvailableBytes), nil
}

// procRSS is pid's resident set size.
func procRSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return int64(st.ResidentMemory()), nil
}

// logger is env's logger, or a discarding one.
func logger(env faults.Env) *slog.Logger {
	if env.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return env.Logger
}
