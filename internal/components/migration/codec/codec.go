package codec

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Codec compresses and decompresses one page batch at a time. All codecs
// of this package are safe for concurrent use.
type Codec interface {
	// Name is the codec's name as ByName takes it.
	Name() string
	// Compress appends the compressed form of src to dst. src may be at
	// most MaxInputLen bytes.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress appends the decompressed form of src to dst; it fails
	// (never allocates past it) if the output would exceed maxLen bytes:
	// a corrupted or hostile frame cannot make it allocate without bound.
	// maxLen bounds the bytes appended, not len(dst). On error dst is
	// returned with its original length.
	Decompress(dst, src []byte, maxLen int) ([]byte, error)
}

// MaxInputLen is the largest batch Compress takes (1 GiB; batches are
// usually about 1 MiB).
const MaxInputLen = 1 << 30

var (
	// ErrTooLarge: the input to Compress, or the output of Decompress,
	// exceeds its bound.
	ErrTooLarge = errors.New("codec: too large")
	// ErrChecksum: the frame's CRC does not match: corrupted or truncated.
	ErrChecksum = errors.New("codec: checksum mismatch")
	// ErrCorrupt: the frame is malformed, or was written by another codec.
	ErrCorrupt = errors.New("codec: corrupt frame")
)

var codecs = []Codec{none{}, s2Codec, lz4Codec, zstdCodec}

// Names lists the codecs ByName knows, in a stable order: none, s2, lz4,
// zstd.
func Names() []string {
	names := make([]string, len(codecs))
	for i, c := range codecs {
		names[i] = c.Name()
	}
	return names
}

// ByName returns the codec called name (exactly as Names spells it). Codecs
// are shared values, safe for concurrent use.
func ByName(name string) (Codec, error) {
	for _, c := range codecs {
		if c.Name() == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("codec: unknown compression %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// none is the identity codec. It carries no checksum: integrity comes from
// the migration's page hashes.
type none struct{}

func (none) Name() string { return "none" }

func (none) Compress(dst, src []byte) ([]byte, error) {
	if len(src) > MaxInputLen {
		return dst, fmt.Errorf("%w: batch of %d bytes (max %d)", ErrTooLarge, len(src), MaxInputLen)
	}
	return append(dst, src...), nil
}

func (none) Decompress(dst, src []byte, maxLen int) ([]byte, error) {
	if len(src) > max(maxLen, 0) {
		return dst, fmt.Errorf("%w: none: %d bytes, limit %d", ErrTooLarge, len(src), maxLen)
	}
	return append(slices.Grow(dst, len(src)), src...), nil
}
