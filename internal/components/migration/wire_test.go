package migration

import (
	"bytes"
	"errors"
	"testing"
)

func TestEntriesRoundTrip(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, PageSize)
	var b []byte
	b = appendEntry(b, 3, 1, pageRaw, raw)
	b = appendEntry(b, 9, 2, pageZero, nil)
	b = appendEntry(b, 1000, 5, pageDelta, []byte{1, 2, 3})
	want := []entry{{3, 1, pageRaw, raw}, {9, 2, pageZero, nil}, {1000, 5, pageDelta, []byte{1, 2, 3}}}
	for i, w := range want {
		e, rest, err := nextEntry(b, 2048)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.page != w.page || e.gen != w.gen || e.kind != w.kind || !bytes.Equal(e.data, w.data) {
			t.Fatalf("entry %d = %+v, want %+v", i, e, w)
		}
		b = rest
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
}

// TestBadEntriesAreErrors: every truncation and out-of-range field of an
// entry is an error, never a panic or an out-of-bounds page.
func TestBadEntriesAreErrors(t *testing.T) {
	full := appendEntry(nil, 3, 1, pageRaw, make([]byte, PageSize))
	for n := range len(full) {
		if _, _, err := nextEntry(full[:n], 16); !errors.Is(err, errBadBatch) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	for _, b := range [][]byte{
		appendEntry(nil, 16, 1, pageZero, nil),                   // page out of range
		appendEntry(nil, 1, 1, 9, nil),                           // unknown kind
		append(appendEntry(nil, 1, 1, pageDelta, nil)[:3], 0x80), // delta length cut short
	} {
		if _, _, err := nextEntry(b, 16); !errors.Is(err, errBadBatch) {
			t.Fatalf("% x: %v", b, err)
		}
	}
}

func FuzzNextEntry(f *testing.F) {
	f.Add(appendEntry(nil, 3, 1, pageDelta, []byte{1, 2}))
	f.Add(appendEntry(nil, 0, 0, pageZero, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			e, rest, err := nextEntry(b, 64)
			if err != nil {
				return
			}
			if e.page >= 64 || len(rest) >= len(b) {
				t.Fatalf("entry %+v, %d of %d bytes left", e, len(rest), len(b))
			}
			b = rest
		}
	})
}

func TestStripingSendsEveryPageOnOneStream(t *testing.T) {
	for _, streams := range []int{1, 3, 4} {
		seen := make([]int, 1000)
		for s := range streams {
			for p := range seen {
				if stripe(p, streams) == s {
					seen[p]++
				}
			}
		}
		for p, n := range seen {
			if n != 1 {
				t.Fatalf("%d streams: page %d on %d streams", streams, p, n)
			}
		}
	}
}
