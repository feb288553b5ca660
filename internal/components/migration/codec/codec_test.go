package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const pageSize = 4096

// textPage is a page of log-like text: what a guest's page cache holds.
func textPage(r *rand.Rand) []byte {
	words := []string{"the", "migration", "page", "dirty", "bitmap", "guest", "kernel",
		"memory", "error", "warning", "info", "connection", "request", "latency",
		"ms", "retry", "socket", "buffer", "worker", "commit", "index", "value"}
	levels := []string{"INFO", "WARN", "DEBUG", "ERROR"}
	var b bytes.Buffer
	for b.Len() < pageSize {
		fmt.Fprintf(&b, "2026-%02d-%02dT%02d:%02d:%02d.%03dZ %s worker=%d ",
			1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000),
			levels[r.IntN(len(levels))], r.IntN(64))
		for k := 3 + r.IntN(8); k > 0; k-- {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "key=user:%d latency_ms=%d\n", r.IntN(100000), r.IntN(500))
	}
	return b.Bytes()[:pageSize]
}

func randomPage(r *rand.Rand) []byte {
	p := make([]byte, pageSize)
	for i := 0; i < pageSize; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	return p
}

// testBatch is n pages: 60% zero, 30% text-like, 10% random, in a seeded
// random order.
func testBatch(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	kinds := make([]int, n)
	for i := range kinds {
		switch {
		case i < n*6/10:
			kinds[i] = 0
		case i < n*9/10:
			kinds[i] = 1
		default:
			kinds[i] = 2
		}
	}
	r.Shuffle(n, func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	b := make([]byte, 0, n*pageSize)
	for _, k := range kinds {
		switch k {
		case 0:
			b = append(b, make([]byte, pageSize)...)
		case 1:
			b = append(b, textPage(r)...)
		default:
			b = append(b, randomPage(r)...)
		}
	}
	return b
}

func all(t *testing.T) []Codec {
	t.Helper()
	var cs []Codec
	for _, n := range Names() {
		c, err := ByName(n)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

func TestNamesAndByName(t *testing.T) {
	if got, want := Names(), []string{"none", "s2", "lz4", "zstd"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	Names()[0] = "mutated"
	if Names()[0] != "none" {
		t.Fatal("Names returns shared storage")
	}
	for _, n := range Names() {
		c, err := ByName(n)
		if err != nil || c.Name() != n {
			t.Fatalf("ByName(%q) = %v, %v", n, c, err)
		}
	}
	for _, bad := range []string{"", "gzip", "ZSTD", " lz4", "zstd:3"} {
		_, err := ByName(bad)
		if err == nil {
			t.Fatalf("ByName(%q) accepted", bad)
		}
		if !strings.Contains(err.Error(), "none, s2, lz4, zstd") {
			t.Fatalf("ByName(%q) error %q does not name the valid choices", bad, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	inputs := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{7}},
		{"two bytes", []byte{7, 7}},
		{"zero page", make([]byte, pageSize)},
		{"text page", textPage(r)},
		{"random page", randomPage(r)},
		{"batch of 256", testBatch(256, 1)},
		{"3 MiB zeros (past the zstd window, many blocks)", make([]byte, 3<<20)},
		{"3 MiB batch", testBatch(768, 2)},
	}
	for _, c := range all(t) {
		for _, in := range inputs {
			t.Run(c.Name()+"/"+in.name, func(t *testing.T) {
				frame, err := c.Compress([]byte("pre"), in.data)
				if err != nil {
					t.Fatal(err)
				}
				if string(frame[:3]) != "pre" {
					t.Fatal("Compress did not append")
				}
				frame = frame[3:]
				out, err := c.Decompress([]byte("xy"), frame, len(in.data))
				if err != nil {
					t.Fatalf("Decompress: %v", err)
				}
				if string(out[:2]) != "xy" || !bytes.Equal(out[2:], in.data) {
					t.Fatal("round trip differs")
				}
				if len(in.data) > 0 {
					out, err := c.Decompress([]byte("xy"), frame, len(in.data)-1)
					if !errors.Is(err, ErrTooLarge) || string(out) != "xy" {
						t.Fatalf("Decompress with maxLen one short = %q, %v; want dst unchanged, ErrTooLarge", out, err)
					}
				}
				if _, err := c.Decompress(nil, frame, -1); err == nil && len(in.data) > 0 {
					t.Fatal("negative maxLen accepted")
				}
			})
		}
	}
}

// TestEnvelope: the frame layout of doc.go, and incompressible batches are
// stored.
func TestEnvelope(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	random := randomPage(r)
	zero := make([]byte, pageSize)
	for _, c := range all(t)[1:] {
		f := c.(*framed)
		frame, _ := c.Compress(nil, random)
		if frame[0] != f.id|storedFlag || len(frame) != 1+2+pageSize+4 || !bytes.Equal(frame[3:3+pageSize], random) {
			t.Errorf("%s: random page not stored (method %#x, %d bytes)", c.Name(), frame[0], len(frame))
		}
		frame, _ = c.Compress(nil, zero)
		if frame[0] != f.id || len(frame) > 200 {
			t.Errorf("%s: zero page: method %#x, %d bytes", c.Name(), frame[0], len(frame))
		}
		if got := crc32.Checksum(frame[:len(frame)-4], castagnoli); got != binary.LittleEndian.Uint32(frame[len(frame)-4:]) {
			t.Errorf("%s: trailer is not the CRC-32C of the frame", c.Name())
		}
		if raw, _ := binary.Uvarint(frame[1:]); raw != pageSize {
			t.Errorf("%s: raw length %d", c.Name(), raw)
		}
	}
}

// TestCorruption: every single-byte change, every truncation and an
// appended byte make Decompress fail, for every codec but none.
func TestCorruption(t *testing.T) {
	data := testBatch(16, 5)
	for _, c := range all(t)[1:] {
		t.Run(c.Name(), func(t *testing.T) {
			frame, err := c.Compress(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, bad []byte) {
				t.Helper()
				out, err := c.Decompress([]byte("d"), bad, len(data))
				if err == nil {
					t.Fatalf("%s: Decompress accepted a corrupted frame", what)
				}
				if string(out) != "d" {
					t.Fatalf("%s: dst changed on error", what)
				}
			}
			for i := range frame {
				for _, x := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(frame)
					bad[i] ^= x
					check(fmt.Sprintf("byte %d ^ %#x", i, x), bad)
				}
			}
			for n := 0; n < len(frame); n++ {
				check(fmt.Sprintf("truncated to %d", n), frame[:n])
			}
			check("appended byte", append(bytes.Clone(frame), 0))
			t.Logf("%s: %d-byte frame, %d flips and %d truncations rejected", c.Name(), len(frame), 3*len(frame), len(frame))
		})
	}
	// none has no integrity of its own: a flipped byte passes through.
	frame, _ := none{}.Compress(nil, data)
	frame[10] ^= 1
	if out, err := (none{}).Decompress(nil, frame, len(data)); err != nil || bytes.Equal(out, data) {
		t.Fatal("none is documented to pass corruption through to the migration's hashes")
	}
}

func TestWrongCodec(t *testing.T) {
	data := testBatch(4, 6)
	for _, from := range all(t)[1:] {
		frame, _ := from.Compress(nil, data)
		for _, to := range all(t)[1:] {
			if to == from {
				continue
			}
			_, err := to.Decompress(nil, frame, len(data))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "("+from.Name()+")") {
				t.Errorf("%s frame into %s: %v", from.Name(), to.Name(), err)
			}
		}
	}
}

// envelope builds a frame with a valid CRC around any payload: what a
// hostile peer can send.
func envelope(method byte, raw uint64, payload []byte) []byte {
	f := append([]byte{method}, binary.AppendUvarint(nil, raw)...)
	f = append(f, payload...)
	return binary.LittleEndian.AppendUint32(f, crc32.Checksum(f, castagnoli))
}

// TestLyingLength: a valid-CRC frame whose payload decodes to far more than
// its envelope claims fails without allocating for the real size.
func TestLyingLength(t *testing.T) {
	big := make([]byte, 64<<20)
	for _, c := range all(t)[1:] {
		t.Run(c.Name(), func(t *testing.T) {
			f := c.(*framed)
			frame, _ := c.Compress(nil, big)
			raw, w := binary.Uvarint(frame[1:])
			if raw != uint64(len(big)) || frame[0] != f.id {
				t.Fatal("unexpected frame")
			}
			payload := frame[1+w : len(frame)-4]
			for _, claim := range []uint64{0, 1, pageSize, 1 << 20} {
				lie := envelope(f.id, claim, payload)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				out, err := c.Decompress(nil, lie, 1<<20)
				runtime.ReadMemStats(&after)
				if err == nil {
					t.Fatalf("claim %d: accepted a %d-byte frame", claim, len(out))
				}
				if grew := after.TotalAlloc - before.TotalAlloc; grew > claim+4<<20 {
					t.Fatalf("claim %d: allocated %d bytes", claim, grew)
				}
			}
			// A claim over maxLen fails before any allocation.
			lie := envelope(f.id, 1<<40, payload)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 10 {
				if _, err := c.Decompress(nil, lie, 1<<20); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("1 TiB claim: %v", err)
				}
			}
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 { // error values only
				t.Fatalf("1 TiB claim: allocated %d bytes in 10 calls", grew)
			}
		})
	}
}

func TestTooLargeInput(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 1 GiB")
	}
	big := make([]byte, MaxInputLen+1)
	for _, c := range all(t) {
		if out, err := c.Compress(nil, big); !errors.Is(err, ErrTooLarge) || out != nil {
			t.Errorf("%s: Compress of %d bytes = %d bytes, %v", c.Name(), len(big), len(out), err)
		}
	}
}

// TestConcurrent: several streams share each codec (run with -race).
func TestConcurrent(t *testing.T) {
	for _, c := range all(t) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				var frame, out []byte
				for k := range 20 {
					data := testBatch(8, uint64(g*100+k))
					var err error
					frame, err = c.Compress(frame[:0], data)
					if err != nil {
						t.Error(err)
						return
					}
					out, err = c.Decompress(out[:0], frame, len(data))
					if err != nil || !bytes.Equal(out, data) {
						t.Errorf("%s: stream %d batch %d: %v", c.Name(), g, k, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

// TestSteadyAllocs: with buffers reused, a batch costs at most a couple of
// small allocations (pools, error-free paths).
func TestSteadyAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	data := testBatch(64, 8)
	for _, c := range all(t) {
		frame, _ := c.Compress(nil, data)
		dst := make([]byte, 0, 2*len(data))
		out := make([]byte, 0, len(data))
		ca := testing.AllocsPerRun(50, func() { dst, _ = c.Compress(dst[:0], data) })
		da := testing.AllocsPerRun(50, func() { out, _ = c.Decompress(out[:0], frame, len(data)) })
		t.Logf("%s: %.1f allocs per Compress, %.1f per Decompress", c.Name(), ca, da)
		if ca > 2 || da > 2 {
			t.Errorf("%s: %.1f allocs per Compress, %.1f per Decompress", c.Name(), ca, da)
		}
	}
}

// TestHostileFrames: valid-CRC frames a hostile or buggy peer could send.
func TestHostileFrames(t *testing.T) {
	zstdBig, _ := zstdCodec.Compress(nil, make([]byte, 1<<20))
	_, w := binary.Uvarint(zstdBig[1:])
	zstdPayload := zstdBig[1+w : len(zstdBig)-4] // claims 1 MiB in its own header
	tests := []struct {
		name  string
		c     Codec
		frame []byte
		max   int
		want  error
	}{
		{"lz4: compressed empty batch into a nil dst", lz4Codec, envelope(2, 0, []byte{0x10, 'a'}), 100, ErrCorrupt},
		{"lz4: garbage", lz4Codec, envelope(2, 64, []byte{0xff, 0xff, 0xff, 0xff}), 100, ErrCorrupt},
		{"lz4: offset before the start", lz4Codec, envelope(2, 64, []byte{0x1f, 'a', 0x10, 0x00, 0x0f}), 100, ErrCorrupt},
		{"lz4: decodes short of the claim", lz4Codec, envelope(2, 64, []byte{0x30, 'a', 'b', 'c'}), 100, ErrCorrupt},
		{"s2: own length differs", s2Codec, envelope(1, 64, []byte{0x05, 0x10, 'h', 'e', 'l', 'l', 'o'}), 100, ErrCorrupt},
		{"s2: garbage", s2Codec, envelope(1, 64, []byte{0x40, 0xff, 0xff, 0xff}), 100, ErrCorrupt},
		{"zstd: frame header claims 1 MiB, envelope 100", zstdCodec, envelope(3, 100, zstdPayload), 100, ErrCorrupt},
		{"zstd: skippable frame only", zstdCodec, envelope(3, 10, []byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}), 100, ErrCorrupt},
		{"zstd: garbage", zstdCodec, envelope(3, 10, []byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff}), 100, ErrCorrupt},
		{"stored payload shorter than claimed", s2Codec, envelope(1|storedFlag, 10, []byte("abc")), 100, ErrCorrupt},
		{"stored payload longer than claimed", zstdCodec, envelope(3|storedFlag, 2, []byte("abc")), 100, ErrCorrupt},
		{"unknown method", lz4Codec, envelope(0x7f, 3, []byte("abc")), 100, ErrCorrupt},
		{"one-byte frame", s2Codec, []byte{1}, 100, ErrChecksum},
		{"bad length uvarint", s2Codec, func() []byte {
			f := append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...)
			return binary.LittleEndian.AppendUint32(f, crc32.Checksum(f, castagnoli))
		}(), 100, ErrCorrupt},
		{"claim over maxLen", lz4Codec, envelope(2|storedFlag, 101, make([]byte, 101)), 100, ErrTooLarge},
		{"none over maxLen", none{}, make([]byte, 101), 100, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.c.Decompress(nil, tc.frame, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decompress = %d bytes, %v; want %v", len(out), err, tc.want)
			}
			if out != nil {
				t.Fatal("dst changed on error")
			}
		})
	}
}
