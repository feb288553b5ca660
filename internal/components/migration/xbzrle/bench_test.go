package xbzrle

import (
	"bytes"
	"fmt"
	"math"
	"testing"
)

// benchCases are 4 KiB pages with a given share of 8-byte words rewritten:
// identical (a page dirtied but rewritten with the same bytes), sparse
// (counters, pointers), a dense tail and a fully rewritten page.
var benchCases = []struct {
	name string
	frac float64
}{
	{"identical", 0},
	{"sparse-1pct", 0.01},
	{"scattered-10pct", 0.10},
	{"half", 0.5},
	{"rewritten", 1},
}

func BenchmarkEncode(b *testing.B) {
	for _, bc := range benchCases {
		old, cur := testPages(4096, bc.frac, 42)
		dst := make([]byte, 0, 4096)
		d, ok := Encode(nil, old, cur, 4096)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(4096)
			b.ReportAllocs()
			for b.Loop() {
				Encode(dst, old, cur, 4096)
			}
			if ok {
				b.ReportMetric(float64(len(d)), "delta-bytes")
			} else {
				b.ReportMetric(1, "overflow")
			}
		})
	}
}

// BenchmarkEncodeBytewise is the byte-at-a-time reference, for comparison.
func BenchmarkEncodeBytewise(b *testing.B) {
	for _, bc := range benchCases[:3] {
		old, cur := testPages(4096, bc.frac, 42)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(4096)
			for b.Loop() {
				refEncode(old, cur)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range benchCases[:4] {
		old, cur := testPages(4096, bc.frac, 42)
		delta, _ := Encode(nil, old, cur, math.MaxInt)
		page := bytes.Clone(old)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(4096)
			b.ReportAllocs()
			for b.Loop() {
				copy(page, old)
				if err := Decode(page, delta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCache is the source's per-page step on a cache hit: Get the old
// copy, Encode against it, Put the new content.
func BenchmarkCache(b *testing.B) {
	for _, pages := range []int{1024, 16384} {
		b.Run(fmt.Sprintf("pages=%d", pages), func(b *testing.B) {
			c := newTestCache(b, DefaultCacheSize, 4096)
			old, cur := testPages(4096, 0.01, 1)
			for p := 0; p < pages; p++ {
				c.Put(uint64(p), old)
			}
			dst := make([]byte, 0, 4096)
			b.SetBytes(4096)
			b.ReportAllocs()
			p := uint64(0)
			for b.Loop() {
				prev, ok := c.Get(p)
				if !ok {
					b.Fatal("miss")
				}
				Encode(dst, prev, cur, 4096)
				c.Put(p, old)
				p = (p + 1) % uint64(pages)
			}
		})
	}
}
