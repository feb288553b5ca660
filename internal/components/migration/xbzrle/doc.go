// Package xbzrle is QEMU's XBZRLE delta encoding of a guest memory page
// against the content the destination last received for it, and the bounded
// page cache the migration SOURCE keeps of that content.
//
// # Format
//
// A delta is the format of QEMU's migration/xbzrle.c: a sequence of
//
//	zero-run length (ULEB128) | nonzero-run length (ULEB128) | nonzero-run bytes
//
// where a zero run is a stretch of bytes equal in the old and the new page
// (their XOR is zero) and a nonzero run is a stretch that differs, carried
// verbatim from the new page. Runs are maximal, the first zero run may be 0
// (the page starts with a change), no later zero run and no nonzero run is 0,
// and a trailing zero run is not written. So:
//
//   - an identical page encodes to an EMPTY delta (QEMU returns 0 and sends
//     nothing for the page); Decode of an empty delta leaves the page as is;
//   - for pages of at most 16383 bytes Encode's output is byte for byte what
//     QEMU's xbzrle_encode_buffer writes (QEMU's "small" ULEB128 stops at two
//     bytes; this package reads and writes any ULEB128 length, so larger pages
//     work too, but are not wire-compatible with QEMU);
//   - Decode accepts every delta QEMU's xbzrle_decode_buffer accepts for the
//     same page (non-canonical two-byte lengths included) and also longer
//     ULEB128 lengths; like QEMU it rejects a zero-length nonzero run, a
//     zero-length zero run after the first, a trailing zero run and any run
//     past the end of the page or of the delta.
//
// The package carries only the delta body: the page header (QEMU's
// ENCODING_FLAG_XBZRLE byte and be16 length) belongs to the stream that
// frames it.
//
// Encode compares eight bytes at a time (XOR of little-endian uint64 loads,
// no unsafe) and stops as soon as the delta would exceed the caller's limit,
// as QEMU does, so an overflowing page costs little before it is sent raw.
// Decode validates the whole delta before it writes a byte: on error the page
// is unchanged, and it never writes past len(page).
//
// # Cache
//
// Cache is QEMU's XBZRLE cache (migration/page_cache.c, default 64 MiB): one
// slot per cached page, held in an anonymous mmap outside the Go heap so a
// large cache neither shows as heap growth nor is scanned by the collector.
// It is 4-way set associative (QEMU's is direct mapped), set = page % sets as
// in QEMU, so a contiguous hot range up to the cache's capacity never
// conflicts; within a set the least recently used entry is replaced. It is
// not safe for concurrent use: keep one per migration stream, or guard it.
//
// Imports: the standard library and golang.org/x/sys/unix; nothing of
// soakd's. No goroutines, clocks or sockets.
package xbzrle
