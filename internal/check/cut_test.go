package check_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/check"
)

// TestStraddlingLostWrite is W2-0's reproduction: an acknowledged put that
// straddles the cut, then a read of the value it overwrote. One window and
// two windows must agree: illegal.
func TestStraddlingLostWrite(t *testing.T) {
	history := []check.KVOp{
		put(0, 0, 10, "x", "1", ok),
		get(1, 20, 30, "x", "1"),
		put(2, 90, 110, "x", "2", ok), // straddles the cut at 100
		get(1, 120, 130, "x", "1"),    // the put was lost
	}
	if r, _ := runHistory(t, history...); r.Illegal != 1 {
		t.Fatalf("one window: %+v", r)
	}
	l, _, _ := newChecker(t, nil)
	for _, op := range history[:3] {
		l.Record(op)
	}
	r := l.CheckUntil(at(100))
	if r.Illegal != 0 || r.OK != 1 {
		t.Fatalf("first window (x cut at its quiet moment, 30ms): %+v", r)
	}
	l.Record(history[3])
	r = l.CheckUntil(at(200))
	if r.Illegal != 1 || r.LastViolation == nil || !r.LastViolation.WindowStart.Equal(at(30)) {
		t.Fatalf("two windows: %+v %+v", r, r.LastViolation)
	}
}

// TestKeyCutAtQuietMoment: each key is cut at its own latest moment with
// nothing in flight; a key busy at every moment waits for a later check,
// and is cut anyway (and counted) once busy for MaxKeyLag.
func TestKeyCutAtQuietMoment(t *testing.T) {
	l, reg, _ := newChecker(t, func(o *check.LinearizabilityOptions) { o.MaxKeyLag = 150 * time.Millisecond })
	// x: quiet at 100. y: quiet at 40 only. z: busy from 0 on, chained.
	for _, op := range []check.KVOp{
		put(0, 0, 10, "x", "1", ok), get(1, 20, 30, "x", "1"),
		put(0, 0, 40, "y", "1", ok), put(1, 50, 150, "y", "2", ok),
		put(2, 0, 90, "z", "1", ok), put(3, 80, 170, "z", "2", ok),
	} {
		l.Record(op)
	}
	r := l.CheckUntil(at(100))
	if r.OK != 2 || r.Buffered != 3 || r.ForcedCuts != 0 {
		t.Fatalf("at 100: x and y checked, y's put in flight and z held: %+v", r)
	}
	// A late op on y after its quiet moment is fine; on x it is late.
	l.Record(get(4, 60, 65, "y", "1"))
	l.Record(get(4, 60, 65, "x", "1"))
	if r := l.Results(); r.Dropped != 1 {
		t.Fatalf("late on x only: %+v", r)
	}
	l.Record(put(2, 160, 250, "z", "3", ok)) // z never rests
	r = l.CheckUntil(at(200))
	if r.ForcedCuts != 1 || r.Illegal != 0 {
		t.Fatalf("z busy for 200ms > MaxKeyLag: forced cut expected: %+v", r)
	}
	if got := testutil.ToFloat64(counter(t, reg, "soakd_check_forced_cuts_total")); got != 1 {
		t.Fatalf("forced cuts metric %v", got)
	}
	if r := l.CheckNow(); r.Buffered != 0 || r.Illegal != 0 || r.Checked+r.Dropped != r.Recorded {
		t.Fatalf("%+v", r)
	}
}

// TestDroppedWriteOnBackloggedKeyStaysUnknown: a write dropped (buffer
// full) on a key whose cut lags behind keeps the key unknown until the key
// itself has been checked past the write, not merely the other keys.
func TestDroppedWriteOnBackloggedKeyStaysUnknown(t *testing.T) {
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) { o.MaxOps = 4 })
	l.Record(put(0, 0, 50, "x", "1", ok))
	l.Record(put(1, 60, 250, "x", "2", ok)) // x busy from 60 to 250
	if r := l.CheckUntil(at(100)); r.OK != 1 || r.Buffered != 1 {
		t.Fatalf("%+v", r)
	}
	for _, k := range []string{"y", "z", "w"} {
		l.Record(get(2, 110, 120, k, ""))
	}
	l.Record(put(3, 70, 80, "x", "9", ok)) // buffer full: dropped
	if r := l.CheckUntil(at(200)); r.Dropped != 1 || r.Buffered != 1 {
		t.Fatalf("%+v", r)
	}
	// put 9 may have landed after put 2: reading 9 is linearizable.
	l.Record(get(2, 260, 270, "x", "9"))
	if r := l.CheckUntil(at(300)); r.Illegal != 0 || r.Unknown != 1 {
		t.Fatalf("x must be unknown, not illegal: %+v", r)
	}
}

// TestHotKeyNeverRestingIsForcedNotDropped: one key with an op always in
// flight never has a quiet moment; the buffer sized for MaxKeyLag holds it
// until its forced cut, so no op is dropped and its windows are judged.
func TestHotKeyNeverRestingIsForcedNotDropped(t *testing.T) {
	const window, maxOp = 10, 6 // ms
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) {
		o.Window = window * time.Millisecond
		o.MaxOpDuration = maxOp * time.Millisecond
		o.MaxOps = 2 * (window + window + maxOp) // Rate's sizing at 1 op/ms
		o.EvidenceDir = ""
	})
	for now := 1; now <= 400; now++ {
		if c := now - 3; c >= 0 { // 3 ms puts, one called every ms
			l.Record(put(c%4, c, now, "hot", fmt.Sprint(c), ok))
		}
		if now%window == 0 {
			l.CheckUntil(at(now - maxOp))
		}
	}
	r := l.CheckNow()
	if r.Dropped != 0 || r.ForcedCuts == 0 || r.OK == 0 || r.Illegal != 0 || r.Unknown != 0 {
		t.Fatalf("%+v", r)
	}
}

// TestBufferPressureForcesCutsNotDrops: with only the pressure trigger
// closing windows, a never-resting key is cut (counted) when the buffer
// fills, instead of losing ops.
func TestBufferPressureForcesCutsNotDrops(t *testing.T) {
	const maxOps = 400
	clock := clockwork.NewFakeClockAt(base)
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) {
		o.Clock = clock
		o.MaxOps = maxOps
		o.Window = time.Hour // only buffer pressure closes windows
		o.MaxOpDuration = 6 * time.Millisecond
		o.EvidenceDir = ""
	})
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for now := 1; now <= 5000; now++ {
		if c := now - 3; c >= 0 {
			l.Record(put(c%4, c, now, "hot", fmt.Sprint(c), ok))
		}
		clock.Advance(at(now).Sub(clock.Now()))
		// Let the checker keep pace, as a real clock would.
		deadline := time.Now().Add(2 * time.Second)
		for l.Results().Buffered >= maxOps*7/8 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stalled at %d: %+v", now, l.Results())
		}
	}
	if err := l.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := l.Results()
	t.Logf("%+v", r)
	if r.Dropped != 0 || r.Triggered == 0 || r.ForcedCuts == 0 || r.Illegal != 0 || r.OK == 0 {
		t.Fatalf("%+v", r)
	}
}
