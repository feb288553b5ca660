package offheap

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestResidentFollowsTouchedPages(t *testing.T) {
	const size = 64 << 20
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	base := Resident()
	untrack := Track(b)
	if got := Mapped(); got < size {
		t.Fatalf("Mapped = %d", got)
	}
	if got := Resident() - base; got > 1<<20 {
		t.Fatalf("untouched mapping: %d bytes resident", got)
	}
	page := unix.Getpagesize()
	for i := 0; i < size/2; i += page {
		b[i] = 1
	}
	got := Resident() - base
	if got < size/2 || got > size/2+1<<20 {
		t.Fatalf("half touched: %d bytes resident, want about %d", got, size/2)
	}
	untrack()
	untrack()
	if Resident() != base || Mapped() != 0 {
		t.Fatal("untrack left the mapping counted")
	}
}
