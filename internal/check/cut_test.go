package check_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/check"
)

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
