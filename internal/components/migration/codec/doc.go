// Package codec compresses the migration's page batches: none, s2, lz4 or
// zstd, chosen by name (ByName, the --compression flag and config value).
//
// Every codec is safe for concurrent use by several streams, starts no
// goroutine, and decompresses under a caller's bound: Decompress never
// produces, nor allocates for, more than maxLen bytes, whatever the frame
// claims, so a corrupted or hostile frame cannot make it allocate without
// bound.
//
// # Frames
//
// none is the identity: its frame is the batch itself, with no header and no
// checksum, so nothing in it detects corruption; the migration's own page
// hashes (the byte-exact checker) do. Decompress only enforces maxLen.
//
// s2, lz4 and zstd wrap their library's block (s2.Encode, lz4 block format,
// one zstd frame from EncodeAll) in the same small envelope:
//
//	method (1 byte) | raw length (uvarint) | payload | CRC-32C (4 bytes, little endian)
//
// The method byte is the codec's id (1 s2, 2 lz4, 3 zstd) with 0x80 set when
// the payload is the batch stored as is (it did not compress: random pages);
// the CRC-32C (Castagnoli, hardware-accelerated) covers every byte before
// it. Decompress checks the CRC before anything else, so a flipped byte or a
// truncation is an error (ErrChecksum) before a decoder runs, then the
// method, then the raw length against maxLen, then decodes into exactly
// that many bytes and requires the decoder to fill them. The library blocks
// themselves carry no checksum (s2, lz4) or have it turned off (zstd: the
// envelope's CRC replaces it); the envelope costs 6 to 10 bytes a batch.
//
// zstd runs at SpeedFastest (about zstd level 1, QEMU's multifd default)
// with a 1 MiB window, through one Encoder and one Decoder used only with
// EncodeAll and DecodeAll: that mode starts no goroutines, and each holds a
// fixed set of min(GOMAXPROCS, 8) block coders made on first use, so up to
// that many streams compress at once and memory stays flat over a long run
// (a leak detector sees no sawtooth of pooled coders).
//
// # Choosing a codec
//
// Measure times each codec's Compress on a sample of guest memory (1 MiB
// batches, one core) and measures its ratio; Choose takes those profiles,
// the link's predicted bandwidth and the number of compressing streams and
// picks the codec that moves the most guest memory a second, the slower of
// the CPUs and the link deciding: none when the link outruns the codecs, zstd
// when the link is slow, none while the bandwidth is unknown.
//
// Imports: the standard library, github.com/klauspost/compress (s2, zstd)
// and github.com/pierrec/lz4/v4; nothing of soakd's.
package codec
