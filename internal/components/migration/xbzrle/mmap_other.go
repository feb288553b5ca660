//go:build !unix

package xbzrle

// mapAnon falls back to the Go heap where there is no mmap; soakd runs on
// Linux, so this only keeps the package building elsewhere.
func mapAnon(n int) ([]byte, error) { return make([]byte, n), nil }

func unmapAnon([]byte) error { return nil }
