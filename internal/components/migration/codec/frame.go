package codec

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

const (
	storedFlag = 0x80
	crcLen     = 4
	// maxHeader is the method byte and the longest raw length uvarint.
	maxHeader = 1 + binary.MaxVarintLen64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// block is a library's block compressor behind the envelope.
type block interface {
	// bound is how many bytes compress may append for n input bytes.
	bound(n int) int
	// compress appends src's compressed form to dst, whose spare capacity
	// is at least bound(len(src)); ok false: not smaller than src.
	compress(dst, src []byte) (out []byte, ok bool)
	// decompress fills out (len(out) is the raw length) from payload; it
	// is an error unless payload decodes to exactly len(out) bytes.
	decompress(out, payload []byte) error
}

// framed is a codec that wraps a block in the envelope (see doc.go).
type framed struct {
	name string
	id   byte
	blk  block
}

func (c *framed) Name() string { return c.name }

func (c *framed) Compress(dst, src []byte) ([]byte, error) {
	if len(src) > MaxInputLen {
		return dst, fmt.Errorf("%w: %s: batch of %d bytes (max %d)", ErrTooLarge, c.name, len(src), MaxInputLen)
	}
	base := len(dst)
	dst = slices.Grow(dst, maxHeader+max(c.blk.bound(len(src)), len(src))+crcLen)
	dst = append(dst, c.id)
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	hdr := len(dst)
	out, ok := c.blk.compress(dst, src)
	if ok && len(out)-hdr < len(src) {
		dst = out
	} else {
		dst = append(dst[:hdr], src...)
		dst[base] |= storedFlag
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[base:], castagnoli)), nil
}

func (c *framed) Decompress(dst, src []byte, maxLen int) ([]byte, error) {
	if len(src) < 1+1+crcLen {
		return dst, fmt.Errorf("%w: %s: %d-byte frame is shorter than its envelope", ErrChecksum, c.name, len(src))
	}
	body := src[:len(src)-crcLen]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(src[len(body):]); got != want {
		return dst, fmt.Errorf("%w: %s: crc32c %08x, frame says %08x", ErrChecksum, c.name, got, want)
	}
	method := body[0]
	if method&^storedFlag != c.id {
		return dst, fmt.Errorf("%w: %s: frame of method %#04x (%s)", ErrCorrupt, c.name, method, methodName(method))
	}
	raw, w := binary.Uvarint(body[1:])
	if w <= 0 {
		return dst, fmt.Errorf("%w: %s: bad length", ErrCorrupt, c.name)
	}
	if raw > uint64(max(maxLen, 0)) {
		return dst, fmt.Errorf("%w: %s: frame of %d bytes, limit %d", ErrTooLarge, c.name, raw, maxLen)
	}
	n := int(raw)
	payload := body[1+w:]
	orig, base := dst, len(dst)
	dst = slices.Grow(dst, n)
	out := dst[base : base+n : base+n] // decoders cannot reach past it
	if n == 0 && method&storedFlag == 0 {
		// Compress stores every empty batch. Rejecting the compressed form
		// also keeps lz4's amd64 decoder from a nil output buffer, which it
		// writes through (a SIGSEGV panic in lz4 v4.1.33).
		return orig, fmt.Errorf("%w: %s: compressed empty batch", ErrCorrupt, c.name)
	}
	if method&storedFlag != 0 {
		if len(payload) != n {
			return orig, fmt.Errorf("%w: %s: stored payload of %d bytes for %d", ErrCorrupt, c.name, len(payload), n)
		}
		copy(out, payload)
		return dst[:base+n], nil
	}
	if err := c.blk.decompress(out, payload); err != nil {
		return orig, fmt.Errorf("%w: %s: %v", ErrCorrupt, c.name, err)
	}
	return dst[:base+n], nil
}

func methodName(method byte) string {
	for _, c := range codecs {
		if f, ok := c.(*framed); ok && f.id == method&^storedFlag {
			return f.name
		}
	}
	return "unknown"
}

// s2

var s2Codec = &framed{name: "s2", id: 1, blk: s2Block{}}

type s2Block struct{}

func (s2Block) bound(n int) int { return s2.MaxEncodedLen(n) }

func (s2Block) compress(dst, src []byte) ([]byte, bool) {
	// s2.Encode writes from the start of the slice it is given, and does
	// not allocate when its capacity is at least MaxEncodedLen.
	enc := s2.Encode(dst[len(dst):cap(dst)], src)
	return dst[:len(dst)+len(enc)], true
}

func (s2Block) decompress(out, payload []byte) error {
	n, err := s2.DecodedLen(payload)
	if err != nil {
		return err
	}
	if n != len(out) {
		return fmt.Errorf("block of %d bytes, envelope says %d", n, len(out))
	}
	_, err = s2.Decode(out, payload)
	return err
}

// lz4

var lz4Codec = &framed{name: "lz4", id: 2, blk: lz4Block{}}

// lz4Compressors hold the hash tables of lz4's block compressor, which is
// not safe for concurrent use.
var lz4Compressors = sync.Pool{New: func() any { return new(lz4.Compressor) }}

type lz4Block struct{}

// bound is 0: compress writes only into a window one byte shorter than the
// input (the stored form is never larger).
func (lz4Block) bound(int) int { return 0 }

func (lz4Block) compress(dst, src []byte) ([]byte, bool) {
	if len(src) < 2 {
		return dst, false
	}
	c := lz4Compressors.Get().(*lz4.Compressor)
	defer lz4Compressors.Put(c)
	// With a window shorter than CompressBlockBound, CompressBlock returns
	// 0 (likely incompressible) or an error (did not fit): store then.
	n, err := c.CompressBlock(src, dst[len(dst):len(dst)+len(src)-1])
	if err != nil || n == 0 {
		return dst, false
	}
	return dst[:len(dst)+n], true
}

func (lz4Block) decompress(out, payload []byte) error {
	n, err := lz4.UncompressBlock(payload, out)
	if err != nil {
		return err
	}
	if n != len(out) {
		return fmt.Errorf("block of %d bytes, envelope says %d", n, len(out))
	}
	return nil
}

// zstd

var zstdCodec = &framed{name: "zstd", id: 3, blk: &zstdBlock{}}

const (
	zstdWindow = 1 << 20
	// zstdMaxWindow is what the decoder accepts: zstd's recommended
	// minimum support, above our own window.
	zstdMaxWindow = 8 << 20
)

type zstdBlock struct {
	once sync.Once
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	err  error
}

// init makes the shared Encoder and Decoder on first use. Both are used
// only through EncodeAll and DecodeAll, which start no goroutines.
func (z *zstdBlock) init() error {
	z.once.Do(func() {
		n := min(runtime.GOMAXPROCS(0), 8)
		z.enc, z.err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(n),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(false), // the envelope's CRC-32C covers the frame
		)
		if z.err != nil {
			return
		}
		z.dec, z.err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(n),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(MaxInputLen),
			zstd.WithDecodeAllCapLimit(true), // never past cap(dst): the envelope's length
		)
	})
	return z.err
}

// bound is zstd's worst case: raw blocks of 128 KiB with a 3-byte header
// each, plus the frame header.
func (*zstdBlock) bound(n int) int { return n + n>>10 + 32 }

func (z *zstdBlock) compress(dst, src []byte) ([]byte, bool) {
	if z.init() != nil {
		return dst, false // stored; cannot happen with these options
	}
	return z.enc.EncodeAll(src, dst), true
}

func (z *zstdBlock) decompress(out, payload []byte) error {
	if err := z.init(); err != nil {
		return err
	}
	res, err := z.dec.DecodeAll(payload, out[:0])
	if err != nil {
		return err
	}
	if len(res) != len(out) {
		return fmt.Errorf("frame of %d bytes, envelope says %d", len(res), len(out))
	}
	if len(out) > 0 && &res[0] != &out[0] {
		copy(out, res) // not expected: the cap limit keeps DecodeAll in out
	}
	return nil
}
