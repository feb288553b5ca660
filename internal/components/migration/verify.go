package migration

import (
	"fmt"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Verification: every page's hash is kept as it is sent (source) and as it
// is applied (destination). At switch-over the two hash lists must match
// (a corrupted frame or delta shows here, before the guest resumes); after
// the guest resumes, the source's frozen memory is hashed whole and must
// match too (a write the dirty bitmap missed shows there).

func pageHash(p []byte) uint64 { return xxhash.Sum64(p) }

// zeroPageHash is the hash of a page of zeros.
var zeroPageHash = pageHash(make([]byte, PageSize))

// listHash hashes a list of page hashes.
func listHash(h []uint64) uint64 {
	if len(h) == 0 {
		return 0
	}
	return xxhash.Sum64(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(h))), len(h)*8))
}

// hashAll fills into with the hash of every page of mem.
func hashAll(mem *region, into []uint64) {
	for i := range mem.pages() {
		into[i] = pageHash(mem.page(i))
	}
}

// diffPages lists up to max pages whose hashes differ.
func diffPages(a, b []uint64, max int) []int {
	var out []int
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			if out = append(out, i); len(out) == max {
				break
			}
		}
	}
	return out
}

// checkEdge checks QEMU's migration-test invariant on a paused sequential
// guest: the counter of hot page p is pass+1 before the cursor and pass
// from it on (mod 256), so the pages are all equal but for one edge, where
// the guest stopped.
func checkEdge(mem *region, hot int, cpu CPUState) error {
	for p := range hot {
		want := byte(cpu.Pass)
		if p < cpu.Cursor {
			want++
		}
		if got := mem.b[p*PageSize]; got != want {
			return fmt.Errorf("hot page %d counter %d, want %d (pass %d, edge at %d)", p, got, want, cpu.Pass, cpu.Cursor)
		}
	}
	return nil
}

// isZero reports whether p is all zero bytes.
func isZero(p []byte) bool {
	w := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(p))), len(p)/8)
	for _, x := range w {
		if x != 0 {
			return false
		}
	}
	return true
}
