package xbzrle

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// refEncode is QEMU's xbzrle_encode_buffer byte by byte, without a limit:
// maximal alternating equal/different runs, no trailing zero run.
func refEncode(old, cur []byte) []byte {
	var d []byte
	i, n := 0, len(cur)
	for i < n {
		z := 0
		for i < n && old[i] == cur[i] {
			z++
			i++
		}
		if i == n {
			break
		}
		start := i
		for i < n && old[i] != cur[i] {
			i++
		}
		d = appendULEB(d, uint64(z))
		d = appendULEB(d, uint64(i-start))
		d = append(d, cur[start:i]...)
	}
	return d
}

func appendULEB(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// qemuDecode is QEMU's xbzrle_decode_buffer (with uleb128_decode_small):
// the page length it produced, or -1.
func qemuDecode(src, dst []byte) int {
	small := func(in []byte) (uint32, int) {
		if in[0]&0x80 == 0 {
			return uint32(in[0]), 1
		}
		n := uint32(in[0] & 0x7f)
		if in[1]&0x80 != 0 {
			return 0, -1
		}
		return n | uint32(in[1])<<7, 2
	}
	i, d := 0, 0
	slen, dlen := len(src), len(dst)
	for i < slen {
		if slen-i < 2 {
			return -1
		}
		count, ret := small(src[i:])
		if ret < 0 || (i != 0 && count == 0) {
			return -1
		}
		i += ret
		d += int(count)
		if d > dlen {
			return -1
		}
		if slen-i < 2 {
			return -1
		}
		count, ret = small(src[i:])
		if ret < 0 || count == 0 {
			return -1
		}
		i += ret
		if d+int(count) > dlen || i+int(count) > slen {
			return -1
		}
		copy(dst[d:], src[i:i+int(count)])
		d += int(count)
		i += int(count)
	}
	return d
}

func seq(n int, f func(i int) byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = f(i)
	}
	return b
}

func with(b []byte, off int, v ...byte) []byte {
	c := bytes.Clone(b)
	copy(c[off:], v)
	return c
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestEncodeTable(t *testing.T) {
	zero8 := make([]byte, 8)
	page := seq(4096, func(i int) byte { return byte(i * 7) })
	tests := []struct {
		name     string
		old, cur []byte
		want     []byte // nil: check against refEncode only
	}{
		{"empty page", nil, nil, []byte{}},
		{"identical page is an empty delta", page, bytes.Clone(page), []byte{}},
		{"one byte", []byte{1}, []byte{2}, []byte{0, 1, 2}},
		{"runs", zero8, []byte{0, 0, 1, 2, 0, 0, 0, 3}, []byte{2, 2, 1, 2, 3, 1, 3}},
		{"change at start", zero8, with(zero8, 0, 9), []byte{0, 1, 9}},
		{"change at end, trailing equal run dropped", zero8, with(zero8, 6, 9), []byte{6, 1, 9}},
		{"nine bytes, last differs", make([]byte, 9), with(make([]byte, 9), 8, 1), []byte{8, 1, 1}},
		{"two-byte lengths", page, with(page, 300, bytes.Repeat([]byte{0xff}, 200)...), nil},
		{"whole page differs", page, seq(4096, func(i int) byte { return byte(i*7) ^ 0x5a }),
			cat([]byte{0, 0x80, 0x20}, seq(4096, func(i int) byte { return byte(i*7) ^ 0x5a }))},
		{"alternating bytes (worst case)", make([]byte, 64), seq(64, func(i int) byte { return byte(i & 1) }), nil},
		{"odd offsets across word boundaries", page, with(with(page, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 4090, 0, 0, 0), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Make sure "changed" bytes really differ from old.
			want := tc.want
			if want == nil {
				want = refEncode(tc.old, tc.cur)
			} else if ref := refEncode(tc.old, tc.cur); !bytes.Equal(ref, want) {
				t.Fatalf("table wants %x, reference encoder gives %x", want, ref)
			}
			got, ok := Encode(nil, tc.old, tc.cur, math.MaxInt)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("Encode = %x, %v; want %x, true", got, ok, want)
			}
			// Appends to dst.
			pre := []byte("hdr")
			got, ok = Encode(pre, tc.old, tc.cur, math.MaxInt)
			if !ok || !bytes.Equal(got, cat([]byte("hdr"), want)) {
				t.Fatalf("Encode with prefix = %q, %v", got, ok)
			}
			// Limit: exactly len(want) fits, one less does not.
			if _, ok := Encode(nil, tc.old, tc.cur, len(want)); !ok {
				t.Fatalf("Encode with limit %d = !ok", len(want))
			}
			if len(want) > 0 {
				out, ok := Encode(pre, tc.old, tc.cur, len(want)-1)
				if ok || !bytes.Equal(out, pre) || len(out) != 3 {
					t.Fatalf("Encode over limit = %q, %v; want dst unchanged, false", out, ok)
				}
			}
			// Round trip.
			p := bytes.Clone(tc.old)
			if err := Decode(p, got[3:]); err != nil || !bytes.Equal(p, tc.cur) {
				t.Fatalf("Decode(Encode) = %v, page equal %v", err, bytes.Equal(p, tc.cur))
			}
			if len(tc.cur) <= 16383 {
				q := bytes.Clone(tc.old)
				if n := qemuDecode(want, q); n < 0 || !bytes.Equal(q, tc.cur) {
					t.Fatalf("QEMU's decoder rejects or misapplies the delta (%d)", n)
				}
			}
		})
	}
}

func TestEncodeNegativeLimit(t *testing.T) {
	p := make([]byte, 8)
	if _, ok := Encode(nil, p, p, -1); ok {
		t.Fatal("empty delta fits in a limit of -1")
	}
	if out, ok := Encode(nil, p, p, 0); !ok || len(out) != 0 {
		t.Fatal("identical page does not fit in a limit of 0")
	}
}

func TestEncodeLengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Encode(nil, make([]byte, 8), make([]byte, 9), 100)
}

func TestEncodeNoAlloc(t *testing.T) {
	old, cur := testPages(4096, 0.05, 1)
	dst := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := Encode(dst, old, cur, 4096); !ok {
			t.Fatal("overflow")
		}
	})
	if allocs != 0 {
		t.Fatalf("Encode allocates %v times per call", allocs)
	}
	page := bytes.Clone(old)
	delta, _ := Encode(nil, old, cur, 4096)
	allocs = testing.AllocsPerRun(100, func() {
		if err := Decode(page, delta); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %v times per call", allocs)
	}
}

func TestDecodeTable(t *testing.T) {
	base := seq(16, func(i int) byte { return byte(i) })
	tests := []struct {
		name  string
		delta []byte
		want  []byte // nil: an error
	}{
		{"empty delta", nil, base},
		{"first zero run may be 0", []byte{0, 2, 0xaa, 0xbb}, with(base, 0, 0xaa, 0xbb)},
		{"two runs", []byte{1, 1, 0xaa, 2, 1, 0xbb}, with(with(base, 1, 0xaa), 4, 0xbb)},
		{"run to the end of the page", []byte{15, 1, 0xcc}, with(base, 15, 0xcc)},
		{"whole page", cat([]byte{0, 16}, bytes.Repeat([]byte{9}, 16)), bytes.Repeat([]byte{9}, 16)},
		{"non-canonical two-byte length (QEMU accepts)", []byte{0x82, 0x00, 1, 0xaa}, with(base, 2, 0xaa)},
		{"long zero-run length", []byte{0x81, 0x80, 0x80, 0x00, 1, 0xaa}, with(base, 1, 0xaa)},

		{"truncated zero-run length", []byte{0x80}, nil},
		{"ends after a zero run", []byte{4}, nil},
		{"ends after a zero run mid-delta", []byte{0, 1, 0xaa, 3}, nil},
		{"truncated nonzero-run length", []byte{0, 0x81}, nil},
		{"empty nonzero run", []byte{1, 0}, nil},
		{"empty zero run after the first", []byte{1, 1, 0xaa, 0, 1, 0xbb}, nil},
		{"nonzero run past the delta", []byte{0, 3, 0xaa, 0xbb}, nil},
		{"zero run past the page", []byte{17, 1, 0xaa}, nil},
		{"zero run to the end of the page, then data", []byte{16, 1, 0xaa}, nil},
		{"nonzero run past the page", cat([]byte{8, 9}, bytes.Repeat([]byte{1}, 9)), nil},
		{"second run past the page", cat([]byte{0, 1, 7, 15, 2, 1, 2}), nil},
		{"length overflows uint64", bytes.Repeat([]byte{0xff}, 11), nil},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0}, nil},
		{"huge nonzero run", []byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := append(bytes.Clone(base), 0xee, 0xee, 0xee, 0xee)
			page := buf[:16]
			err := Decode(page, tc.delta)
			if !bytes.Equal(buf[16:], []byte{0xee, 0xee, 0xee, 0xee}) {
				t.Fatal("Decode wrote past len(page)")
			}
			if tc.want == nil {
				if err == nil || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Decode = %v, want an ErrCorrupt", err)
				}
				if !bytes.Equal(page, base) {
					t.Fatal("Decode changed the page before failing")
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode = %v", err)
			}
			if !bytes.Equal(page, tc.want) {
				t.Fatalf("page = %x, want %x", page, tc.want)
			}
		})
	}
}

// testPages returns a page of size n and a copy with about frac of its
// 8-byte words changed.
func testPages(n int, frac float64, seed uint64) (old, cur []byte) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	old = make([]byte, n)
	for i := range old {
		old[i] = byte(r.IntN(256))
	}
	cur = bytes.Clone(old)
	for w := 0; w+8 <= n; w += 8 {
		if r.Float64() < frac {
			for k := 0; k < 8; k++ {
				cur[w+k] ^= byte(1 + r.IntN(255))
			}
		}
	}
	return old, cur
}

func TestRandomRoundTrip(t *testing.T) {
	for _, n := range []int{1, 7, 8, 31, 32, 33, 4096, 65536} {
		for _, frac := range []float64{0, 0.001, 0.05, 0.5, 1} {
			old, cur := testPages(n, frac, uint64(n)+uint64(frac*1000))
			// Sprinkle single-byte changes too.
			r := rand.New(rand.NewPCG(uint64(n), 7))
			for k := 0; k < n/64; k++ {
				cur[r.IntN(n)] ^= 0x10
			}
			want := refEncode(old, cur)
			got, ok := Encode(nil, old, cur, math.MaxInt)
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("n=%d frac=%v: Encode differs from the reference", n, frac)
			}
			p := bytes.Clone(old)
			if err := Decode(p, got); err != nil || !bytes.Equal(p, cur) {
				t.Fatalf("n=%d frac=%v: round trip: %v", n, frac, err)
			}
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint16(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 0, 1, 2, 0, 0, 0, 3}, uint16(7))
	f.Add(bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{1, 2}, 50), uint16(100))
	old, cur := testPages(4096, 0.05, 3)
	f.Add(old, cur, uint16(4096))
	old, cur = testPages(300, 0.5, 4)
	f.Add(old, cur, uint16(40))
	f.Fuzz(func(t *testing.T, old, cur []byte, limit uint16) {
		n := min(len(old), len(cur))
		old, cur = old[:n], cur[:n]
		want := refEncode(old, cur)
		got, ok := Encode([]byte{0xab}, old, cur, int(limit))
		if ok != (len(want) <= int(limit)) {
			t.Fatalf("ok = %v with limit %d, reference delta is %d bytes", ok, limit, len(want))
		}
		if !ok {
			if len(got) != 1 || got[0] != 0xab {
				t.Fatal("dst changed on overflow")
			}
			return
		}
		if !bytes.Equal(got[1:], want) {
			t.Fatalf("Encode = %x, reference %x", got[1:], want)
		}
		p := bytes.Clone(old)
		if err := Decode(p, got[1:]); err != nil || !bytes.Equal(p, cur) {
			t.Fatalf("round trip: %v", err)
		}
		if n <= 16383 {
			q := bytes.Clone(old)
			if qemuDecode(want, q) < 0 || !bytes.Equal(q, cur) {
				t.Fatal("QEMU's decoder rejects the delta")
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{2, 2, 1, 2, 3, 1, 3})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{0, 8, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{1, 2, 3}, []byte{0x80})
	f.Add([]byte{1, 2, 3}, []byte{1, 0})
	f.Add([]byte{1, 2, 3}, []byte{0x82, 0x00, 1, 9})
	f.Add([]byte{1, 2, 3}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0})
	old, cur := testPages(4096, 0.05, 5)
	delta, _ := Encode(nil, old, cur, math.MaxInt)
	f.Add(old, delta)
	f.Fuzz(func(t *testing.T, page, delta []byte) {
		orig := bytes.Clone(page)
		buf := append(bytes.Clone(page), 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee)
		p := buf[: len(page) : len(page)+8]
		err := Decode(p, delta)
		if !bytes.Equal(buf[len(page):], bytes.Repeat([]byte{0xee}, 8)) {
			t.Fatal("Decode wrote past len(page)")
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if !bytes.Equal(p, orig) {
				t.Fatal("page changed on error")
			}
		}
		// Whatever QEMU's decoder accepts, Decode accepts with the same result.
		q := bytes.Clone(orig)
		if len(delta) > 0 && qemuDecode(delta, q) >= 0 {
			if err != nil {
				t.Fatalf("QEMU accepts the delta, Decode says %v", err)
			}
			if !bytes.Equal(p, q) {
				t.Fatal("Decode and QEMU's decoder disagree")
			}
		}
		if err == nil {
			// A valid delta re-encodes to a delta with the same effect.
			again, ok := Encode(nil, orig, p, math.MaxInt)
			r := bytes.Clone(orig)
			if !ok || Decode(r, again) != nil || !bytes.Equal(r, p) {
				t.Fatal("re-encoding a decoded page does not round-trip")
			}
		}
	})
}
