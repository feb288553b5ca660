package leakcheck

import (
	"testing"
	"time"
)

func TestRingCapacity(t *testing.T) {
	for _, tc := range []struct {
		tWindow, tInterval time.Duration
		want               int
	}{
		{30 * time.Minute, 15 * time.Second, 122}, // 120 intervals, 121 instants, +1
		{30 * time.Minute, 7 * time.Second, 260},  // ceil(257.1) + 2
		{time.Minute, time.Minute, 3},
		{0, time.Second, 2},
		{time.Minute, 0, 2},
	} {
		if got := RingCapacity(tc.tWindow, tc.tInterval); got != tc.want {
			t.Errorf("RingCapacity(%v, %v) = %d, want %d", tc.tWindow, tc.tInterval, got, tc.want)
		}
	}
}

func TestRing(t *testing.T) {
	r := NewRing(4)
	if _, ok := r.Last(); ok || r.Len() != 0 || len(r.Samples(nil)) != 0 {
		t.Fatal("new ring not empty")
	}
	at := func(i int) time.Time { return tEpoch.Add(time.Duration(i) * time.Second) }
	for i := range 10 {
		r.Add(Sample{T: at(i), V: float64(i)})
		if r.Len() != min(i+1, 4) {
			t.Fatalf("after %d adds Len = %d", i+1, r.Len())
		}
		got := r.Samples(nil)
		for j, s := range got {
			if want := float64(max(i-3, 0) + j); s.V != want {
				t.Fatalf("after %d adds: %v, want oldest first from %v", i+1, got, max(i-3, 0))
			}
		}
		if last, ok := r.Last(); !ok || last.V != float64(i) {
			t.Fatalf("Last = %v, %v", last, ok)
		}
	}
	// Holds 6..9.
	for _, tc := range []struct {
		since time.Time
		first float64
		n     int
	}{
		{at(0), 6, 4}, {at(6), 6, 4}, {at(7).Add(-time.Millisecond), 7, 3}, {at(9), 9, 1}, {at(10), 0, 0},
	} {
		got := r.Since(tc.since, nil)
		if len(got) != tc.n || (tc.n > 0 && got[0].V != tc.first) {
			t.Errorf("Since(%v) = %v, want %d samples from %v", tc.since.Sub(tEpoch), got, tc.n, tc.first)
		}
	}
	// Appends to dst without allocating when it has room.
	dst := make([]Sample, 1, 8)
	if a := testing.AllocsPerRun(100, func() { dst = r.Samples(dst[:1]) }); a != 0 || len(dst) != 5 {
		t.Errorf("Samples into a roomy dst: %v allocs, len %d", a, len(dst))
	}
	r.Reset()
	if r.Len() != 0 || r.Cap() != 4 {
		t.Fatalf("Reset: len %d cap %d", r.Len(), r.Cap())
	}
	if NewRing(0).Cap() != 1 {
		t.Fatal("NewRing(0) must hold one sample")
	}
}
