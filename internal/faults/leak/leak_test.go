package leak

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/faults"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func inject(t *testing.T, clock *clockwork.FakeClock, p map[string]string) faults.Revert {
	t.Helper()
	k := &kind{clock: clock, log: slog.New(slog.DiscardHandler)}
	revert, err := k.Inject(context.Background(), "", p)
	if err != nil {
		t.Fatal(err)
	}
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	return revert
}

// run advances the fake clock by d in canary ticks.
func run(clock *clockwork.FakeClock, d time.Duration) {
	for passed := time.Duration(0); passed < d; passed += leakTick {
		clock.Advance(leakTick)
		time.Sleep(200 * time.Microsecond)
	}
}

func heapLive() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// waitFor polls cond. A starved canary goroutine may still hold an old
// tick when the fake clock stops (the ticker keeps one pending tick and
// drops the rest), so every 50 ms it nudges the clock by one tick; the
// canary leaks by elapsed clock time, so the nudges only add their own
// share. It returns how much extra clock time the nudges added.
func waitFor(t *testing.T, clock *clockwork.FakeClock, what string, cond func() bool) time.Duration {
	t.Helper()
	var extra time.Duration
	deadline := time.Now().Add(10 * time.Second)
	lastNudge := time.Now()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if clock != nil && time.Since(lastNudge) > 50*time.Millisecond {
			clock.Advance(leakTick)
			extra += leakTick
			lastNudge = time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	return extra
}

func TestHeapLinearLeaksAtRateAndFrees(t *testing.T) {
	clock := clockwork.NewFakeClock()
	before := heapLive()
	revert := inject(t, clock, map[string]string{"resource": "heap", "rate": "60MiB/min"})
	run(clock, 10*time.Second)
	// 60 MiB/min for 10 s is 10 MiB; allow the in-flight tick.
	extra := waitFor(t, clock, "heap growth", func() bool { return heapLive()-before >= 9<<20 })
	if grew, want := heapLive()-before, int64((10*time.Second+extra).Seconds()*(1<<20)); grew > want+2<<20 {
		t.Fatalf("heap grew %d bytes, want ~%d", grew, want)
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := heapLive(); after > before+2<<20 {
		t.Fatalf("heap after revert %d, before %d: not freed", after, before)
	}
}

func TestGoroutinesLeakAndAreFreed(t *testing.T) {
	clock := clockwork.NewFakeClock()
	before := runtime.NumGoroutine()
	revert := inject(t, clock, map[string]string{"resource": "goroutines", "rate": "600/min"})
	run(clock, 5*time.Second)
	waitFor(t, clock, "50 leaked goroutines", func() bool { return runtime.NumGoroutine()-before >= 50 })
	var buf strings.Builder
	_ = pprofGoroutines(&buf)
	if !strings.Contains(buf.String(), "leak.parkForever") {
		t.Fatal("goroutine profile does not show the canary's stack")
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, nil, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestFDsLeakAndAreClosed(t *testing.T) {
	clock := clockwork.NewFakeClock()
	count := func() int { es, _ := os.ReadDir("/proc/self/fd"); return len(es) }
	before := count()
	revert := inject(t, clock, map[string]string{"resource": "fds", "rate": "20/s"})
	run(clock, 2*time.Second)
	waitFor(t, clock, "40 fds", func() bool { return count()-before >= 39 })
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := count(); after > before {
		t.Fatalf("fds after revert %d, before %d", after, before)
	}
	// Revert is idempotent.
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShapes(t *testing.T) {
	clock := clockwork.NewFakeClock()
	before := heapLive()
	// step: one minute's worth at once, then flat.
	revert := inject(t, clock, map[string]string{"resource": "heap", "rate": "6MiB/min", "shape": "step"})
	waitFor(t, nil, "step", func() bool { return heapLive()-before >= 11<<19 })
	run(clock, 10*time.Second)
	if grew := heapLive() - before; grew > 7<<20 {
		t.Fatalf("step kept growing: %d", grew)
	}
	_ = revert(context.Background())

	before = heapLive()
	revert = inject(t, clock, map[string]string{"resource": "heap", "rate": "60MiB/min", "shape": "plateau", "plateau_after": "5s"})
	run(clock, 20*time.Second)
	waitFor(t, clock, "plateau", func() bool { return heapLive()-before >= 4<<20 })
	if grew := heapLive() - before; grew > 6<<20 {
		t.Fatalf("plateau grew %d after plateau_after, want ~5MiB", grew)
	}
	_ = revert(context.Background())
}

func TestValidate(t *testing.T) {
	k := Spec()
	bad := []struct {
		p    map[string]string
		want string
	}{
		{map[string]string{"rate": "1/s"}, "resource: required"},
		{map[string]string{"resource": "disk", "rate": "1/s"}, "resource: must be heap, goroutines or fds, got \"disk\""},
		{map[string]string{"resource": "heap"}, "rate: required"},
		{map[string]string{"resource": "heap", "rate": "fast"}, "rate:"},
		{map[string]string{"resource": "heap", "rate": "1MiB/min", "shape": "zigzag"}, "shape:"},
		{map[string]string{"resource": "heap", "rate": "1MiB/min", "plateau_after": "-1s"}, "plateau_after:"},
		{map[string]string{"resource": "heap", "rate": "1MiB/min", "unreachable": "true"}, "unreachable: only"},
		{map[string]string{"resource": "heap", "rate": "1MiB/min", "colour": "red"}, "unknown parameter colour"},
	}
	for _, c := range bad {
		if err := k.Validate(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%v) = %v, want %q", c.p, err, c.want)
		}
	}
	if err := k.Validate(map[string]string{"resource": "goroutines", "rate": "20/min", "shape": "plateau", "unreachable": "true"}); err != nil {
		t.Fatal(err)
	}
}
