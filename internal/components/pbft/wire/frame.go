package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A frame is a 4-byte big-endian payload length, then the payload (one
// encoded message).
const frameHeader = 4

// ErrFrameTooLarge: a frame (written or announced) exceeds the maximum.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// WriteFrame writes payload as one frame. w should be buffered (a
// *bufio.Writer writes the header without allocating); payloads above
// MaxMessageBytes are refused.
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes exceed MaxMessageBytes (%d)", ErrFrameTooLarge, len(payload), MaxMessageBytes)
	}
	n := uint32(len(payload))
	if bw, ok := w.(io.ByteWriter); ok {
		for _, c := range [frameHeader]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} {
			if err := bw.WriteByte(c); err != nil {
				return err
			}
		}
	} else if _, err := w.Write(binary.BigEndian.AppendUint32(make([]byte, 0, frameHeader), n)); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// FrameReader reads frames of at most a maximum size, reusing one buffer.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// growStep is how much a frame's buffer grows ahead of the bytes that
// arrived: a header announcing 16 MiB costs memory only as its bytes come.
const growStep = 64 << 10

// NewFrameReader reads frames from r, each at most max bytes
// (MaxMessageBytes when max <= 0 or above it).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 || max > MaxMessageBytes {
		max = MaxMessageBytes
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next reads the next frame's payload, valid until the next call. At a
// clean end between frames it returns io.EOF; within one,
// io.ErrUnexpectedEOF.
func (fr *FrameReader) Next() ([]byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > fr.max {
		return nil, fmt.Errorf("%w: %d bytes exceed %d", ErrFrameTooLarge, n, fr.max)
	}
	if n <= cap(fr.buf) {
		fr.buf = fr.buf[:n]
		if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
			return nil, unexpected(err)
		}
		return fr.buf, nil
	}
	// Grow with the bytes that arrive, not with the announced length.
	b := fr.buf[:0]
	for len(b) < n {
		step := min(n-len(b), max(len(b), growStep))
		if cap(b)-len(b) < step {
			nb := make([]byte, len(b), len(b)+step)
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(fr.r, b[len(b):len(b)+step])
		b = b[:len(b)+k]
		if err != nil {
			return nil, unexpected(err)
		}
	}
	fr.buf = b
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
