package xbzrle

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func newTestCache(t testing.TB, size, pageSize int) *Cache {
	t.Helper()
	c, err := NewCache(size, pageSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestNewCache(t *testing.T) {
	tests := []struct {
		size, pageSize int
		capacity       int    // when no error
		err            string // substring
	}{
		{DefaultCacheSize, 4096, 16384, ""},
		{4096, 4096, 1, ""},
		{3 * 64, 64, 3, ""},        // fewer than 4 slots: one set of 3
		{7 * 64, 64, 4, ""},        // rounded down to a multiple of 4
		{9*64 + 63, 64, 8, ""},     // partial slot ignored
		{100, 4096, 0, "at least"}, // smaller than a page
		{4096, 0, 0, "page size"},
		{4096, -1, 0, "page size"},
		{-1, 4096, 0, "at least"},
	}
	for _, tc := range tests {
		c, err := NewCache(tc.size, tc.pageSize)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NewCache(%d, %d) = %v, want error containing %q", tc.size, tc.pageSize, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewCache(%d, %d): %v", tc.size, tc.pageSize, err)
			continue
		}
		if got := c.Stats().Capacity; got != tc.capacity {
			t.Errorf("NewCache(%d, %d) capacity %d, want %d", tc.size, tc.pageSize, got, tc.capacity)
		}
		if c.PageSize() != tc.pageSize {
			t.Errorf("PageSize %d", c.PageSize())
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestCacheGetPut(t *testing.T) {
	const ps = 64
	c := newTestCache(t, 16*ps, ps) // 4 sets of 4
	if _, ok := c.Get(1); ok {
		t.Fatal("hit in an empty cache")
	}
	c.Put(1, fill(ps, 1))
	got, ok := c.Get(1)
	if !ok || !bytes.Equal(got, fill(ps, 1)) {
		t.Fatal("Get after Put")
	}
	if cap(got) != ps {
		t.Fatalf("Get slice cap %d, want %d (appending must not spill into the next slot)", cap(got), ps)
	}
	// Put copies: changing the source afterwards does not change the cache.
	src := fill(ps, 2)
	c.Put(1, src)
	src[0] = 99
	if got, _ := c.Get(1); !bytes.Equal(got, fill(ps, 2)) {
		t.Fatal("Put did not copy, or did not replace")
	}
	// Page 0 and the largest page number are ordinary keys.
	c.Put(0, fill(ps, 3))
	c.Put(^uint64(0), fill(ps, 4))
	if got, ok := c.Get(0); !ok || got[0] != 3 {
		t.Fatal("page 0")
	}
	if got, ok := c.Get(^uint64(0)); !ok || got[0] != 4 {
		t.Fatal("page MaxUint64")
	}
	st := c.Stats()
	want := CacheStats{Hits: 4, Misses: 1, Pages: 3, Capacity: 16}
	if st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
	c.Overflow()
	c.Overflow()
	if c.Stats().Overflows != 2 {
		t.Fatal("Overflow not counted")
	}
	if !c.Invalidate(1) || c.Invalidate(1) {
		t.Fatal("Invalidate")
	}
	if _, ok := c.Get(1); ok {
		t.Fatal("hit after Invalidate")
	}
	if c.Stats().Pages != 2 {
		t.Fatalf("Pages = %d after Invalidate", c.Stats().Pages)
	}
}

func TestCacheLRUEviction(t *testing.T) {
	const ps = 32
	c := newTestCache(t, 16*ps, ps) // 4 sets of 4: pages p, p+4, p+8... share a set
	for k := uint64(0); k < 4; k++ {
		c.Put(1+4*k, fill(ps, byte(k)))
	}
	c.Get(1) // page 1 is now the most recently used; page 5 the least
	c.Put(17, fill(ps, 17))
	if _, ok := c.Get(5); ok {
		t.Fatal("LRU page 5 survived")
	}
	for _, p := range []uint64{1, 9, 13, 17} {
		if _, ok := c.Get(p); !ok {
			t.Fatalf("page %d evicted", p)
		}
	}
	st := c.Stats()
	if st.Evictions != 1 || st.Pages != 4 {
		t.Fatalf("Stats = %+v", st)
	}
	// Other sets are untouched by the conflict.
	c.Put(2, fill(ps, 2))
	if c.Stats().Evictions != 1 {
		t.Fatal("eviction in an empty set")
	}
}

func TestCacheContiguousRangeFits(t *testing.T) {
	const ps = 64
	c := newTestCache(t, 1024*ps, ps)
	base := uint64(1 << 40)
	for p := base; p < base+1024; p++ {
		c.Put(p, fill(ps, byte(p)))
	}
	for p := base; p < base+1024; p++ {
		got, ok := c.Get(p)
		if !ok || got[0] != byte(p) || got[ps-1] != byte(p) {
			t.Fatalf("page %d lost or wrong", p)
		}
	}
	if st := c.Stats(); st.Evictions != 0 || st.Pages != 1024 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestCacheMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	c, err := NewCache(4096, 64)
	if err != nil {
		t.Fatal(err)
	}
	mustPanic("short Put", func() { c.Put(1, make([]byte, 63)) })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	mustPanic("Get after Close", func() { c.Get(1) })
	mustPanic("Put after Close", func() { c.Put(1, make([]byte, 64)) })
	mustPanic("Invalidate after Close", func() { c.Invalidate(1) })
	_ = c.Stats()
}

// TestCacheOffHeap: a full 64 MiB cache does not grow the Go heap by 64 MiB.
func TestCacheOffHeap(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no mmap: the cache is on the heap here")
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	c := newTestCache(t, DefaultCacheSize, 4096)
	page := fill(4096, 0x5a)
	for p := uint64(0); p < uint64(c.Stats().Capacity); p++ {
		c.Put(p, page)
	}
	after := heap()
	if c.Stats().Pages != 16384 {
		t.Fatalf("Pages = %d", c.Stats().Pages)
	}
	grew := int64(after) - int64(before)
	t.Logf("heap grew %d bytes for a full 64 MiB cache", grew)
	if grew > 4<<20 {
		t.Fatalf("heap grew %d bytes: the cache's pages are on the Go heap", grew)
	}
	runtime.KeepAlive(c)
}

// FuzzCache runs a random sequence of operations on a tiny cache (lots of
// conflicts) against a model: a hit returns the last content Put for that
// page, the counters add up, and nothing exceeds the capacity.
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 0, 5, 1, 5, 2, 1, 1, 1})
	f.Add([]byte{0, 0, 0, 8, 0, 16, 0, 24, 0, 32, 1, 0, 1, 8, 1, 32, 3, 0})
	f.Add(bytes.Repeat([]byte{0, 3, 1, 3, 0, 11, 1, 11, 2, 3}, 10))
	f.Fuzz(func(t *testing.T, ops []byte) {
		const ps = 16
		c := newTestCache(t, 8*ps, ps) // 2 sets of 4
		model := map[uint64]byte{}     // page -> last content byte
		var gets, hits uint64
		for i := 0; i+1 < len(ops); i += 2 {
			op, page := ops[i]%4, uint64(ops[i+1]%32)
			switch op {
			case 0:
				b := byte(i)
				c.Put(page, fill(ps, b))
				model[page] = b
				got, ok := c.Get(page)
				gets++
				hits++
				if !ok || got[0] != b {
					t.Fatal("page missing right after Put")
				}
			case 1:
				got, ok := c.Get(page)
				gets++
				if ok {
					hits++
					want, inModel := model[page]
					if !inModel || !bytes.Equal(got, fill(ps, want)) {
						t.Fatalf("Get(%d) returns stale or foreign content", page)
					}
				}
			case 2:
				c.Invalidate(page)
				delete(model, page)
			case 3:
				c.Overflow()
			}
			st := c.Stats()
			if st.Pages > st.Capacity || st.Pages > len(model) {
				t.Fatalf("Stats = %+v with %d pages ever live", st, len(model))
			}
			if st.Hits+st.Misses != gets || st.Hits != hits {
				t.Fatalf("Stats = %+v, %d gets, %d hits", st, gets, hits)
			}
		}
	})
}
