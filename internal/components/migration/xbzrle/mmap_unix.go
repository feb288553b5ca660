//go:build unix

package xbzrle

import "golang.org/x/sys/unix"

// mapAnon returns n bytes of zeroed, private, anonymous memory outside the
// Go heap; the kernel commits its pages as they are first written.
func mapAnon(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
}

func unmapAnon(b []byte) error {
	if b == nil {
		return nil
	}
	return unix.Munmap(b)
}
