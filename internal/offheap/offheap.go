// Package offheap accounts for memory soakd maps outside the Go heap for
// the systems it soaks (a migration guest's RAM, the delta cache), so the
// leak checker can subtract its resident part from the process's RSS: a
// guest faulting in its pages is the soaked system's memory, not a leak in
// the harness. The residency of each tracked mapping is read with
// mincore(2).
//
// It also counts the file descriptors soakd holds on purpose for a fault
// (the fds and connections fault kinds), which the open-fds signal
// subtracts the same way: a fault's descriptors are not a leak, and any
// that outlive the revert show as the fault's residue.
package offheap

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	mu      sync.Mutex
	tracked = map[uintptr][]byte{}
	vec     []byte // mincore's scratch, reused
)

// Track adds a mapping (page-aligned, as mmap returns it) until untrack is
// called, which must happen before it is unmapped.
func Track(b []byte) (untrack func()) {
	if len(b) == 0 {
		return func() {}
	}
	key := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	mu.Lock()
	tracked[key] = b
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			delete(tracked, key)
			mu.Unlock()
		})
	}
}

// Mapped is the tracked mappings' total size.
func Mapped() uint64 {
	mu.Lock()
	defer mu.Unlock()
	var n uint64
	for _, b := range tracked {
		n += uint64(len(b))
	}
	return n
}

// Resident is how many bytes of the tracked mappings are in memory now.
func Resident() uint64 {
	page := unix.Getpagesize()
	mu.Lock()
	defer mu.Unlock()
	var n uint64
	for _, b := range tracked {
		pages := (len(b) + page - 1) / page
		if cap(vec) < pages {
			vec = make([]byte, pages)
		}
		v := vec[:pages]
		if err := mincore(b, v); err != nil {
			continue
		}
		for _, x := range v {
			n += uint64(x & 1)
		}
	}
	if len(tracked) == 0 && cap(vec) > 1<<20 {
		vec = nil // do not hold a large scratch with nothing to scan
	}
	return n * uint64(page)
}

// mincore fills vec with one byte per page of b; bit 0 is set for a page
// in memory. (golang.org/x/sys/unix has the syscall number, not a wrapper.)
func mincore(b, vec []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		return errno
	}
	return nil
}
