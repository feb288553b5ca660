package migration

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/offheap"
)

// PageSize is the guest page size: 4 KiB, as on x86.
const PageSize = 4096

// region is anonymous memory outside the Go heap: a guest's RAM, or a
// migration's per-page bookkeeping. Keeping it off the heap keeps soakd's
// own heap signal the harness's, whatever the guests' size, and offheap
// accounts for it so the RSS signal leaves it out too.
type region struct {
	b       []byte
	untrack func()
}

// newRegion maps n bytes (rounded up to whole pages), zero-filled.
func newRegion(n int) (*region, error) {
	if n <= 0 {
		return nil, fmt.Errorf("migration: region of %d bytes", n)
	}
	n = (n + PageSize - 1) / PageSize * PageSize
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("migration: mmap %d bytes: %w", n, err)
	}
	return &region{b: b, untrack: offheap.Track(b)}, nil
}

// free unmaps the region; it is idempotent.
func (r *region) free() error {
	if r == nil || r.b == nil {
		return nil
	}
	r.untrack()
	err := unix.Munmap(r.b)
	r.b = nil
	return err
}

// page returns page i's bytes.
func (r *region) page(i int) []byte { return r.b[i*PageSize : (i+1)*PageSize : (i+1)*PageSize] }

// pages is the number of whole pages.
func (r *region) pages() int { return len(r.b) / PageSize }

// u64s views a region as uint64s (per-page hashes, generations); the
// region's length must be a multiple of 8, which whole pages are.
func (r *region) u64s() []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(r.b))), len(r.b)/8)
}
