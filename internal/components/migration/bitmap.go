package migration

import (
	"math/bits"
	"sync/atomic"
)

// bitmap is the engine's dirty bitmap: one bit per guest page. The guest's
// writer sets a page's bit after writing it; the engine collects and
// clears bits in one atomic swap per word, then reads the pages, so a
// write that races with the read sets its bit again and the page goes in
// the next round. This kernel has no soft-dirty tracking, so every guest
// write goes through here.
type bitmap struct {
	words []atomic.Uint64
	n     int
}

func newBitmap(n int) *bitmap { return &bitmap{words: make([]atomic.Uint64, (n+63)/64), n: n} }

// set marks page i dirty.
func (b *bitmap) set(i int) { b.words[i/64].Or(1 << (uint(i) % 64)) }

// setAll marks every page dirty (the first round sends them all).
func (b *bitmap) setAll() {
	for i := range b.words {
		w := ^uint64(0)
		if rest := b.n - i*64; rest < 64 {
			w = 1<<uint(rest) - 1
		}
		b.words[i].Store(w)
	}
}

// collect clears the bitmap and appends the pages that were dirty, in
// ascending order, to dst.
func (b *bitmap) collect(dst []int) []int {
	for wi := range b.words {
		w := b.words[wi].Swap(0)
		for w != 0 {
			t := bits.TrailingZeros64(w)
			dst = append(dst, wi*64+t)
			w &= w - 1
		}
	}
	return dst
}

// count is the number of dirty pages now.
func (b *bitmap) count() int {
	n := 0
	for i := range b.words {
		n += bits.OnesCount64(b.words[i].Load())
	}
	return n
}
