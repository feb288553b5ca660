package codec

import (
	"bytes"
	"errors"
	"testing"
)

func seedBatches() [][]byte {
	return [][]byte{
		nil,
		{0},
		[]byte("hello, hello, hello, hello, hello"),
		make([]byte, pageSize),
		testBatch(3, 11),
	}
}

// FuzzRoundTrip: every codec gives back what it was given.
func FuzzRoundTrip(f *testing.F) {
	for _, b := range seedBatches() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range codecs {
			frame, err := c.Compress([]byte{0xaa}, data)
			if err != nil {
				t.Fatalf("%s: %v", c.Name(), err)
			}
			out, err := c.Decompress([]byte{0xbb}, frame[1:], len(data))
			if err != nil || out[0] != 0xbb || !bytes.Equal(out[1:], data) {
				t.Fatalf("%s: round trip: %v", c.Name(), err)
			}
		}
	})
}

// checkDecompress runs one frame through a codec: no panic, nothing past
// maxLen, dst kept on error, a typed error.
func checkDecompress(t *testing.T, c Codec, frame []byte, maxLen int) {
	t.Helper()
	out, err := c.Decompress([]byte{0xcc}, frame, maxLen)
	if err != nil {
		if len(out) != 1 || out[0] != 0xcc {
			t.Fatalf("%s: dst changed on error", c.Name())
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: untyped error %v", c.Name(), err)
		}
		return
	}
	if out[0] != 0xcc || len(out)-1 > maxLen {
		t.Fatalf("%s: %d bytes out with maxLen %d", c.Name(), len(out)-1, maxLen)
	}
	// What decodes re-encodes and decodes to the same bytes.
	again, _ := c.Compress(nil, out[1:])
	back, err := c.Decompress(nil, again, len(out)-1)
	if err != nil || !bytes.Equal(back, out[1:]) {
		t.Fatalf("%s: re-encoding a decoded batch: %v", c.Name(), err)
	}
}

// FuzzFrame: arbitrary bytes as a frame, for every codec (mostly stopped
// by the CRC: see FuzzDecompress for the decoders themselves).
func FuzzFrame(f *testing.F) {
	for _, b := range seedBatches() {
		for _, c := range codecs {
			frame, _ := c.Compress(nil, b)
			f.Add(frame, uint32(len(b)))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, maxLen uint32) {
		for _, c := range codecs {
			checkDecompress(t, c, frame, int(maxLen%(1<<20)))
		}
	})
}

// FuzzDecompress wraps an arbitrary payload in a valid envelope (right
// CRC), as a hostile peer could, so the fuzzer reaches s2's, lz4's and
// zstd's decoders with any raw length.
func FuzzDecompress(f *testing.F) {
	for _, b := range seedBatches() {
		for _, c := range codecs[1:] {
			frame, _ := c.Compress(nil, b)
			fr := c.(*framed)
			// Seed with the compressed payload itself, whatever was chosen.
			n := 1
			for frame[n]&0x80 != 0 {
				n++
			}
			f.Add(fr.id, uint32(len(b)), frame[n+1:len(frame)-4], uint32(8))
		}
	}
	f.Fuzz(func(t *testing.T, method byte, raw uint32, payload []byte, slack uint32) {
		raw %= 1 << 22
		// Mostly a limit at or above the claim, so the decoders run.
		limit := max(int(raw)+int(slack%64)-8, 0)
		frame := envelope(method, uint64(raw), payload)
		for _, c := range codecs[1:] {
			checkDecompress(t, c, frame, limit)
		}
	})
}
