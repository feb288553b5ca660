package xbzrle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ErrCorrupt is wrapped by every error Decode returns.
var ErrCorrupt = errors.New("xbzrle: corrupt delta")

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// Encode appends to dst the delta that turns old into cur; len(old) must
// equal len(cur) (Encode panics otherwise: that is a caller bug, not data).
// An identical page gives an empty delta (out == dst, ok == true).
//
// ok is false when the delta would exceed limit bytes (the caller sends the
// page raw instead, as QEMU does, which uses limit = page size); dst is then
// returned unchanged, though bytes of its spare capacity may have been
// written. Encode does not allocate when dst has room for the delta, at most
// limit bytes.
func Encode(dst, old, cur []byte, limit int) (out []byte, ok bool) {
	if len(old) != len(cur) {
		panic(fmt.Sprintf("xbzrle: Encode of pages of different sizes (%d and %d bytes)", len(old), len(cur)))
	}
	out = dst
	n := len(cur)
	i := 0
	for i < n {
		z := i
		i = equalRun(old, cur, i)
		if i == n {
			break // the trailing zero run is not written
		}
		nz := i
		i = diffRun(old, cur, i)
		zrun, nzrun := uint64(nz-z), uint64(i-nz)
		if len(out)-len(dst)+uvarintLen(zrun)+uvarintLen(nzrun)+(i-nz) > limit {
			return dst, false
		}
		out = binary.AppendUvarint(out, zrun)
		out = binary.AppendUvarint(out, nzrun)
		out = append(out, cur[nz:i]...)
	}
	if len(out)-len(dst) > limit { // only an empty delta against a negative limit
		return dst, false
	}
	return out, true
}

// equalRun returns the first index >= i where old and cur differ, or
// len(cur). It compares 32 bytes per step while they are equal, then finds
// the first differing byte of the word from the XOR's trailing zero bits.
func equalRun(old, cur []byte, i int) int {
	n := len(cur)
	old = old[:n]
	for ; i+32 <= n; i += 32 {
		o, c := old[i:i+32], cur[i:i+32]
		x0 := binary.LittleEndian.Uint64(o[0:]) ^ binary.LittleEndian.Uint64(c[0:])
		x1 := binary.LittleEndian.Uint64(o[8:]) ^ binary.LittleEndian.Uint64(c[8:])
		x2 := binary.LittleEndian.Uint64(o[16:]) ^ binary.LittleEndian.Uint64(c[16:])
		x3 := binary.LittleEndian.Uint64(o[24:]) ^ binary.LittleEndian.Uint64(c[24:])
		if x0|x1|x2|x3 == 0 {
			continue
		}
		switch {
		case x0 != 0:
			return i + bits.TrailingZeros64(x0)>>3
		case x1 != 0:
			return i + 8 + bits.TrailingZeros64(x1)>>3
		case x2 != 0:
			return i + 16 + bits.TrailingZeros64(x2)>>3
		default:
			return i + 24 + bits.TrailingZeros64(x3)>>3
		}
	}
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(old[i:i+8]) ^ binary.LittleEndian.Uint64(cur[i:i+8])
		if x != 0 {
			return i + bits.TrailingZeros64(x)>>3
		}
	}
	for i < n && old[i] == cur[i] {
		i++
	}
	return i
}

// diffRun returns the first index >= i where old and cur are equal, or
// len(cur). A word of the XOR has a zero byte iff (x-lsb) &^ x & msb is
// non-zero, and the lowest flagged byte is the first zero byte (the trick's
// false positives only sit above a true zero byte), as in QEMU's encoder.
func diffRun(old, cur []byte, i int) int {
	n := len(cur)
	old = old[:n]
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(old[i:i+8]) ^ binary.LittleEndian.Uint64(cur[i:i+8])
		if t := (x - lsb) &^ x & msb; t != 0 {
			return i + bits.TrailingZeros64(t)>>3
		}
	}
	for i < n && old[i] != cur[i] {
		i++
	}
	return i
}

func uvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// Decode applies delta to page in place; page holds the old content. Any
// malformed, truncated or out-of-bounds delta is an error wrapping
// ErrCorrupt, never a panic. The delta is validated before anything is
// written, so on error page is unchanged; Decode never writes past
// len(page). An empty delta leaves page as it is.
func Decode(page, delta []byte) error {
	if err := walk(page, delta, false); err != nil {
		return err
	}
	return walk(page, delta, true)
}

// walk checks delta against a page of len(page) bytes and, when apply is
// set, copies the nonzero runs into page.
func walk(page, delta []byte, apply bool) error {
	n := uint64(len(page))
	var d uint64 // offset in page
	i := 0       // offset in delta
	for i < len(delta) {
		zrun, w := binary.Uvarint(delta[i:])
		if w <= 0 {
			return fmt.Errorf("%w: bad zero-run length at offset %d", ErrCorrupt, i)
		}
		if zrun == 0 && i > 0 {
			return fmt.Errorf("%w: empty zero run at offset %d", ErrCorrupt, i)
		}
		if zrun > n-d {
			return fmt.Errorf("%w: zero run of %d bytes at page offset %d overruns the %d-byte page", ErrCorrupt, zrun, d, n)
		}
		i += w
		d += zrun
		if i == len(delta) {
			return fmt.Errorf("%w: delta ends after a zero run", ErrCorrupt)
		}
		nzrun, w := binary.Uvarint(delta[i:])
		if w <= 0 {
			return fmt.Errorf("%w: bad nonzero-run length at offset %d", ErrCorrupt, i)
		}
		if nzrun == 0 {
			return fmt.Errorf("%w: empty nonzero run at offset %d", ErrCorrupt, i)
		}
		i += w
		if nzrun > n-d {
			return fmt.Errorf("%w: nonzero run of %d bytes at page offset %d overruns the %d-byte page", ErrCorrupt, nzrun, d, n)
		}
		if nzrun > uint64(len(delta)-i) {
			return fmt.Errorf("%w: nonzero run of %d bytes at offset %d overruns the %d-byte delta", ErrCorrupt, nzrun, i, len(delta))
		}
		if apply {
			copy(page[d:d+nzrun], delta[i:i+int(nzrun)])
		}
		i += int(nzrun)
		d += nzrun
	}
	return nil
}
