package check_test

import (
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/check"
)

// checkInWindows records ops (in Return order) and checks them in n windows:
// before each cut, every op called before the cut has been recorded.
func checkInWindows(t *testing.T, l *check.Linearizability, ops []check.KVOp, n int) check.Results {
	t.Helper()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Return.Before(ops[j].Return) })
	var maxDur time.Duration
	for _, op := range ops {
		maxDur = max(maxDur, op.Return.Sub(op.Call))
	}
	start, end := ops[0].Call, ops[len(ops)-1].Return
	next := 0
	for w := 1; w <= n; w++ {
		cut := start.Add(end.Sub(start) * time.Duration(w) / time.Duration(n))
		for next < len(ops) && !ops[next].Return.After(cut.Add(maxDur)) {
			l.Record(ops[next])
			next++
		}
		l.CheckUntil(cut)
	}
	for ; next < len(ops); next++ {
		l.Record(ops[next])
	}
	return l.CheckNow()
}

func simHistory(n int, dropPut int) ([]check.KVOp, *kvSim) {
	s := newKVSim(42, 8, 200)
	s.dropPut = dropPut
	ops := make([]check.KVOp, n)
	for i := range ops {
		ops[i] = s.next()
	}
	return ops, s
}

func TestRandomHistoryInWindows(t *testing.T) {
	const n = 50_000
	ops, _ := simHistory(n, 0)
	start := time.Now()
	l, _, _ := newChecker(t, nil)
	r := checkInWindows(t, l, ops, 10)
	t.Logf("50k ops in 10 windows: %v, %+v", time.Since(start), r)
	if r.Illegal != 0 || r.Unknown != 0 || r.OK == 0 || r.Dropped != 0 || r.Windows != 10 {
		t.Fatalf("%+v, violation %+v", r, r.LastViolation)
	}
	if r.Checked+r.Failed != n {
		t.Fatalf("checked %d + failed %d != %d", r.Checked, r.Failed, n)
	}
}

func TestRandomHistoryLostWrite(t *testing.T) {
	const n = 50_000
	ops, s := simHistory(n, 9000) // a put about halfway through
	if s.dropped == nil {
		t.Fatal("no put dropped")
	}
	l, _, _ := newChecker(t, nil)
	r := checkInWindows(t, l, ops, 10)
	if r.Illegal != 1 || r.LastViolation == nil || r.LastViolation.Key != s.dropped.Key {
		t.Fatalf("lost write of %s at %v not caught: %+v %+v", s.dropped.Key, s.dropped.Return.Sub(base), r, r.LastViolation)
	}
	t.Logf("caught lost put to %s (returned at +%v) in window %v..%v",
		s.dropped.Key, s.dropped.Return.Sub(base), r.LastViolation.WindowStart.Sub(base), r.LastViolation.WindowEnd.Sub(base))
}

func TestMemoryBounded(t *testing.T) {
	const maxOps = 4000
	clock := clockwork.NewFakeClockAt(base)
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) {
		o.Clock = clock
		o.MaxOps = maxOps
		o.Window = time.Hour // only the buffer-size trigger closes windows
		o.MaxOpDuration = 10 * time.Millisecond
		o.UnknownTTL = 20 * time.Millisecond
		o.EvidenceDir = ""
	})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := newKVSim(7, 8, 1000)
	// The first ops arrive in a burst, faster than the checker keeps up:
	// some are dropped, and counted. Then the feed runs at the checker's
	// pace, like a clock that moves with the load.
	burst := 20_000
	feed := func(n int) {
		for i := 0; i < n; i++ {
			op := s.next()
			l.Record(op)
			if i%100 == 99 && op.Return.After(clock.Now()) {
				clock.Advance(op.Return.Sub(clock.Now()))
				// An early check wakes once half the free space left by
				// the last one is used: below 3/4 full when little is held.
				for burst <= 0 && l.Results().Buffered >= maxOps*3/4 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			burst--
		}
	}
	heap := func() uint64 {
		// Let the checker catch up, then measure.
		for l.Results().Buffered >= maxOps*3/4 {
			time.Sleep(time.Millisecond)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	feed(100_000)
	h1 := heap()
	feed(400_000)
	h2 := heap()
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := l.Results()
	t.Logf("heap after 100k ops %d KiB, after 500k %d KiB; %+v", h1>>10, h2>>10, r)
	if r.MaxBuffered > maxOps {
		t.Fatalf("held %d ops, bound %d", r.MaxBuffered, maxOps)
	}
	if r.Recorded != 500_000 || r.Checked+r.Failed+r.Dropped != r.Recorded || r.Buffered != 0 {
		t.Fatalf("ops unaccounted for: %+v", r)
	}
	if r.Illegal != 0 || r.Windows < 100 {
		t.Fatalf("%+v %+v", r, r.LastViolation)
	}
	if h2 > h1+4<<20 {
		t.Fatalf("heap grew from %d to %d bytes", h1, h2)
	}
}
