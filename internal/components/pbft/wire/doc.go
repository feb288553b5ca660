// Package wire is PBFT's binary encoding: Append and Decode turn a
// protocol.Message (nested view changes, checkpoints and pre-prepares
// included) into compact bytes and back, WriteFrame and FrameReader carry
// them over TCP as length-prefixed frames, and Signable gives the bytes
// that MACs and signatures cover. The encoding is canonical (uvarints of
// minimal length, presence flags for pointers, nil and empty slices alike,
// no trailing bytes; Decode rejects anything else), so a message has
// exactly one encoding: a receiver that re-encodes what it decoded
// authenticates the very bytes the sender did, and a flipped bit is either
// a decoding error or another message. Decode trusts nothing: every count
// and length is checked against the limits below and against the bytes
// left before anything is allocated, nesting is bounded, and errors name
// the field (errors.Is ErrLimit or ErrMalformed), so a Byzantine peer's
// frame costs at most a small multiple of its own size.
package wire
