package migration

import (
	"slices"
	"sync"
	"testing"
)

func TestBitmap(t *testing.T) {
	b := newBitmap(130)
	b.setAll()
	if n := b.count(); n != 130 {
		t.Fatalf("setAll marked %d of 130", n)
	}
	if got := b.collect(nil); len(got) != 130 || got[0] != 0 || got[129] != 129 {
		t.Fatalf("collect after setAll: %d pages", len(got))
	}
	if b.count() != 0 {
		t.Fatal("collect did not clear")
	}
	for _, p := range []int{129, 3, 64, 3} {
		b.set(p)
	}
	if got := b.collect(nil); !slices.Equal(got, []int{3, 64, 129}) {
		t.Fatalf("collect = %v", got)
	}
}

// TestBitmapConcurrentSetNeverLost: a set racing with collect lands in this
// collect or the next one, never in neither.
func TestBitmapConcurrentSetNeverLost(t *testing.T) {
	b := newBitmap(4096)
	seen := make([]bool, 4096)
	var wg sync.WaitGroup
	wg.Go(func() {
		for p := range 4096 {
			b.set(p)
		}
	})
	var got []int
	for range 100 {
		got = b.collect(got[:0])
		for _, p := range got {
			seen[p] = true
		}
	}
	wg.Wait()
	for _, p := range b.collect(nil) {
		seen[p] = true
	}
	for p, ok := range seen {
		if !ok {
			t.Fatalf("page %d set but never collected", p)
		}
	}
}
