package migration

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The wire: every migration stream is a TCP connection carrying frames
// [type u8][raw length u32][length u32][payload]. Control frames carry JSON;
// page frames carry a batch of page entries, compressed as a whole by the
// migration's codec (raw length is the batch before compression):
//
//	entry: uvarint page, uvarint generation, u8 kind, then
//	       kind raw:   PageSize bytes
//	       kind zero:  nothing (a zero page travels as a marker)
//	       kind delta: uvarint n, n bytes of XBZRLE delta against the page
//	                   the destination holds
//
// A page always travels on stream page % streams, so its versions arrive
// in order; the generation is belt and braces: an older one never
// overwrites a newer one.
const (
	frameHello   byte = iota + 1 // source → destination, first on every stream
	framePages                   // source → destination
	frameEnd                     // source → destination: this stream is done; on stream 0 with the CPU state
	frameVerdict                 // destination → source, stream 0: the destination's verification
	frameHashes                  // destination → source: its per-page hashes, after a mismatch
	frameCommit                  // source → destination: resume the guest there
	frameResumed                 // destination → source: it runs there now
	frameSync                    // source → destination: a round's end on this stream
	frameSynced                  // destination → source: all before the sync is applied
)

const (
	pageRaw byte = iota
	pageZero
	pageDelta
)

const (
	wireMagic = "SOAKMIG1"
	// maxFrame bounds any frame's lengths, so a corrupted or hostile header
	// cannot make a reader allocate without bound: a batch is at most
	// batchPages raw pages plus their headers.
	maxFrame = batchPages*(PageSize+32) + 64<<10
	// batchPages is how many pages a page frame holds at most.
	batchPages = 256
)

// hello opens a stream.
type hello struct {
	Magic    string   `json:"magic"`
	ID       uint64   `json:"id"` // migration id, shared by its streams
	Stream   int      `json:"stream"`
	Streams  int      `json:"streams"`
	Guest    string   `json:"guest"`
	Size     int      `json:"size"`
	PageSize int      `json:"page_size"`
	Codec    string   `json:"codec"`
	Workload Workload `json:"workload"`
	Edge     bool     `json:"edge"` // check the one-edge invariant
}

// end closes a stream's pages; stream 0's carries the paused guest.
type end struct {
	CPU      *CPUState `json:"cpu,omitempty"`
	SrcHash  uint64    `json:"src_hash,omitempty"` // hash of the per-page hashes as sent
	PausedAt time.Time `json:"paused_at,omitzero"`
}

// verdict is the destination's check of what it holds.
type verdict struct {
	OK      bool   `json:"ok"`
	DstHash uint64 `json:"dst_hash"`
	Problem string `json:"problem,omitempty"`
}

// resumed says the guest runs on the destination.
type resumed struct {
	At  time.Time     `json:"at"`
	Gap time.Duration `json:"gap"` // the guest's own stop: last beat on the source to its first here
}

type frameWriter struct {
	w   *bufio.Writer
	hdr [9]byte
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

func (fw *frameWriter) frame(typ byte, rawLen int, payload []byte) error {
	fw.hdr[0] = typ
	binary.BigEndian.PutUint32(fw.hdr[1:], uint32(rawLen))
	binary.BigEndian.PutUint32(fw.hdr[5:], uint32(len(payload)))
	if _, err := fw.w.Write(fw.hdr[:]); err != nil {
		return err
	}
	_, err := fw.w.Write(payload)
	return err
}

func (fw *frameWriter) control(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := fw.frame(typ, len(b), b); err != nil {
		return err
	}
	return fw.w.Flush()
}

func (fw *frameWriter) flush() error { return fw.w.Flush() }

type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// next reads a frame; its payload is valid until the next call.
func (fr *frameReader) next() (typ byte, rawLen int, payload []byte, err error) {
	var hdr [9]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	typ = hdr[0]
	rawLen = int(binary.BigEndian.Uint32(hdr[1:]))
	n := int(binary.BigEndian.Uint32(hdr[5:]))
	if n > maxFrame || rawLen > maxFrame {
		return 0, 0, nil, fmt.Errorf("migration: frame of %d (%d raw) bytes exceeds %d", n, rawLen, maxFrame)
	}
	if cap(fr.buf) < n {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return 0, 0, nil, err
	}
	return typ, rawLen, fr.buf, nil
}

// control reads a frame that must be of type want and decodes its JSON.
func (fr *frameReader) control(want byte, v any) error {
	typ, _, payload, err := fr.next()
	if err != nil {
		return err
	}
	if typ != want {
		return fmt.Errorf("migration: frame type %d, want %d", typ, want)
	}
	return json.Unmarshal(payload, v)
}

// appendEntry appends one page entry to a batch.
func appendEntry(b []byte, page int, gen uint64, kind byte, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(page))
	b = binary.AppendUvarint(b, gen)
	b = append(b, kind)
	switch kind {
	case pageDelta:
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = append(b, data...)
	case pageRaw:
		b = append(b, data...)
	}
	return b
}

// entry is one decoded page entry; data aliases the batch.
type entry struct {
	page int
	gen  uint64
	kind byte
	data []byte
}

var errBadBatch = errors.New("migration: malformed page batch")

// nextEntry decodes the entry at the start of b and returns the rest.
func nextEntry(b []byte, pages int) (entry, []byte, error) {
	var e entry
	p, n := binary.Uvarint(b)
	if n <= 0 || p >= uint64(pages) {
		return e, nil, fmt.Errorf("%w: page index", errBadBatch)
	}
	b = b[n:]
	g, n := binary.Uvarint(b)
	if n <= 0 || len(b) <= n {
		return e, nil, fmt.Errorf("%w: generation", errBadBatch)
	}
	b = b[n:]
	e.page, e.gen, e.kind = int(p), g, b[0]
	b = b[1:]
	switch e.kind {
	case pageZero:
	case pageRaw:
		if len(b) < PageSize {
			return e, nil, fmt.Errorf("%w: short raw page", errBadBatch)
		}
		e.data, b = b[:PageSize], b[PageSize:]
	case pageDelta:
		l, n := binary.Uvarint(b)
		if n <= 0 || l > PageSize*2 || uint64(len(b)-n) < l {
			return e, nil, fmt.Errorf("%w: delta length", errBadBatch)
		}
		e.data, b = b[n:n+int(l)], b[n+int(l):]
	default:
		return e, nil, fmt.Errorf("%w: page kind %d", errBadBatch, e.kind)
	}
	return e, b, nil
}
