package xbzrle

import (
	"errors"
	"fmt"
	"math"

	"github.com/soakd/soakd/internal/offheap"
)

// DefaultCacheSize is QEMU's default XBZRLE cache size (xbzrle-cache-size).
const DefaultCacheSize = 64 << 20

// ways is the cache's associativity (QEMU's cache is direct mapped: 1).
const ways = 4

// Cache is the source's copy of what the destination last received for each
// cached page: the "old" side of Encode. Page data lives in an anonymous
// mmap outside the Go heap; the per-slot bookkeeping (16 bytes a slot, 256
// KiB for 64 MiB of 4 KiB pages) is on the heap.
//
// It is 4-way set associative: page p may live in any of the 4 slots of set
// p % sets; Put fills a free slot or replaces the least recently used one
// (an eviction). pages are page numbers (frame indexes), not byte addresses:
// consecutive pages map to consecutive sets, so any contiguous range of up
// to Capacity pages fits without conflict.
//
// The caller keeps it in step with the destination: after sending page p
// (as a delta or raw, as after an Encode overflow) it calls Put(p, sent),
// and if p reaches the destination any other way (a zero page, another
// codec) it calls Put with that content or Invalidate(p). Otherwise a later
// delta would be computed against content the destination does not have.
//
// A Cache is not safe for concurrent use, not even for concurrent Gets
// (they update recency and stats): keep one per migration stream, or guard
// it. Close must be called to unmap the memory; Get, Put and Invalidate
// panic after Close.
type Cache struct {
	mem      []byte   // capacity*pageSize bytes, outside the Go heap
	pageSize int      // bytes per slot
	sets     uint64   // capacity / ways
	nways    int      // slots per set: ways, or fewer for a tiny cache
	tags     []uint64 // page held by each slot
	used     []uint64 // last use of each slot (tick); 0: empty
	tick     uint64
	pages    int // slots in use
	stats    CacheStats
	closed   bool
	untrack  func() // the leak checker's RSS leaves the cache out
}

// CacheStats are a Cache's counters since NewCache.
type CacheStats struct {
	Hits      uint64 // Gets that found the page
	Misses    uint64 // Gets that did not (the set holds nothing or other pages)
	Overflows uint64 // deltas over the limit, as counted by Overflow
	Evictions uint64 // Puts that replaced another page's entry
	Pages     int    // pages cached now
	Capacity  int    // pages the cache holds at most
}

// NewCache allocates a cache of size bytes of page slots of pageSize bytes
// (e.g. 4096), size/pageSize slots rounded down to a multiple of 4 (when
// there are at least 4). The slots are an anonymous private mmap
// (golang.org/x/sys/unix) outside the Go heap, committed by the kernel as
// they are first written; Close unmaps it.
func NewCache(size, pageSize int) (*Cache, error) {
	if pageSize <= 0 {
		return nil, fmt.Errorf("xbzrle: cache page size %d: must be > 0", pageSize)
	}
	if size < pageSize {
		return nil, fmt.Errorf("xbzrle: cache size %d: must hold at least one %d-byte page", size, pageSize)
	}
	slots := size / pageSize
	nw := min(ways, slots)
	sets := slots / nw
	capacity := sets * nw
	if capacity > math.MaxInt/pageSize {
		return nil, fmt.Errorf("xbzrle: cache size %d too large", size)
	}
	mem, err := mapAnon(capacity * pageSize)
	if err != nil {
		return nil, fmt.Errorf("xbzrle: cache of %d bytes: %w", capacity*pageSize, err)
	}
	return &Cache{
		untrack:  offheap.Track(mem),
		mem:      mem,
		pageSize: pageSize,
		sets:     uint64(sets),
		nways:    nw,
		tags:     make([]uint64, capacity),
		used:     make([]uint64, capacity),
		stats:    CacheStats{Capacity: capacity},
	}, nil
}

// Close unmaps the cache's memory; slices from Get become invalid (touching
// them would fault). Closing twice is a no-op.
func (c *Cache) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	mem := c.mem
	c.untrack()
	c.mem, c.tags, c.used = nil, nil, nil
	c.pages = 0
	if err := unmapAnon(mem); err != nil {
		return fmt.Errorf("xbzrle: unmap cache: %w", err)
	}
	return nil
}

// PageSize is the size of each cached page.
func (c *Cache) PageSize() int { return c.pageSize }

var errClosed = errors.New("xbzrle: Cache used after Close")

// set returns the first slot of page's set.
func (c *Cache) set(page uint64) int {
	if c.closed {
		panic(errClosed)
	}
	return int(page%c.sets) * c.nways
}

func (c *Cache) slot(s int) []byte {
	off := s * c.pageSize
	return c.mem[off : off+c.pageSize : off+c.pageSize]
}

// find returns page's slot, or -1.
func (c *Cache) find(page uint64) int {
	first := c.set(page)
	for s := first; s < first+c.nways; s++ {
		if c.used[s] != 0 && c.tags[s] == page {
			return s
		}
	}
	return -1
}

// Get returns the cached copy of page, and whether it was there. The slice
// aliases the cache (its capacity is capped at the page): it is valid until
// the next Put or Close, which may overwrite it.
func (c *Cache) Get(page uint64) ([]byte, bool) {
	s := c.find(page)
	if s < 0 {
		c.stats.Misses++
		return nil, false
	}
	c.stats.Hits++
	c.tick++
	c.used[s] = c.tick
	return c.slot(s), true
}

// Put stores a copy of data (len(data) must be PageSize; Put panics
// otherwise) for page, replacing its older entry, else filling a free slot
// of its set, else evicting the set's least recently used page.
func (c *Cache) Put(page uint64, data []byte) {
	if len(data) != c.pageSize && !c.closed {
		panic(fmt.Sprintf("xbzrle: Cache.Put of %d bytes into %d-byte slots", len(data), c.pageSize))
	}
	s := c.find(page)
	if s < 0 {
		first := c.set(page)
		s = first
		for w := first; w < first+c.nways; w++ {
			if c.used[w] < c.used[s] {
				s = w // an empty slot (0) wins, else the oldest
			}
		}
		if c.used[s] == 0 {
			c.pages++
		} else {
			c.stats.Evictions++
		}
		c.tags[s] = page
	}
	copy(c.slot(s), data)
	c.tick++
	c.used[s] = c.tick
}

// Invalidate drops page's entry, if any, and reports whether there was one.
// Call it when page reached the destination other than through this cache.
func (c *Cache) Invalidate(page uint64) bool {
	s := c.find(page)
	if s < 0 {
		return false
	}
	c.used[s] = 0
	c.pages--
	return true
}

// Overflow counts one delta that exceeded Encode's limit (the page was sent
// raw); it shows in Stats().Overflows.
func (c *Cache) Overflow() { c.stats.Overflows++ }

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	st := c.stats
	st.Pages = c.pages
	return st
}
