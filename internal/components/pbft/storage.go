package pbft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
	"github.com/soakd/soakd/internal/fsutil"
)

// A node's disk: its last stable checkpoint (written atomically) and a log
// of the batches it executed since, each record length-prefixed with a
// CRC-32C so a torn tail (a crash mid-write) is cut off on recovery. The
// log is fsync'd before the node sends anything that follows from what it
// executed (replies, checkpoints), and restarted at every stable
// checkpoint, so it holds at most about L batches.
const (
	checkpointFile = "checkpoint"
	logFile        = "executed.log"
	// maxRecord bounds one log record on read (a batch of requests).
	maxRecord = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type storage struct {
	dir string
	f   *os.File
	w   *bufio.Writer
	// stable is the checkpoint on disk.
	stable protocol.Seq
}

func openStorage(dir string) (*storage, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &storage{dir: dir, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// recover reads the checkpoint (nil when none) and the executed batches
// after it, dropping a torn or corrupt tail.
func (s *storage) recover() (*protocol.Checkpoint, []protocol.Committed, error) {
	var cp *protocol.Checkpoint
	if b, err := os.ReadFile(filepath.Join(s.dir, checkpointFile)); err == nil {
		c, err := decodeCheckpoint(b)
		if err != nil {
			return nil, nil, fmt.Errorf("pbft: %s: %w", checkpointFile, err)
		}
		cp, s.stable = &c, c.Seq
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, logFile))
	if err != nil {
		return cp, nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []protocol.Committed
	for {
		b, err := readRecord(r)
		if err != nil {
			break // end of log, or a torn tail
		}
		c, err := decodeCommitted(b)
		if err != nil {
			break
		}
		if c.Seq > s.stable {
			out = append(out, c)
		}
	}
	return cp, out, nil
}

// appendExecuted writes executed batches; sync makes them durable.
func (s *storage) appendExecuted(cs []protocol.Committed) error {
	for _, c := range cs {
		if err := writeRecord(s.w, encodeCommitted(c)); err != nil {
			return err
		}
	}
	return nil
}

func (s *storage) sync() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.f.Sync()
}

// stabilize writes checkpoint cp atomically and restarts the log with the
// batches after it (at most about L: the ones executed since).
func (s *storage) stabilize(cp protocol.Checkpoint, after []protocol.Committed) error {
	if err := fsutil.WriteBytes(filepath.Join(s.dir, checkpointFile), 0o640, encodeCheckpoint(cp)); err != nil {
		return err
	}
	s.stable = cp.Seq
	if err := s.w.Flush(); err != nil {
		return err
	}
	_ = s.f.Close()
	err := fsutil.WriteFile(filepath.Join(s.dir, logFile), 0o640, func(w io.Writer) error {
		for _, c := range after {
			if err := writeRecord(w, encodeCommitted(c)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.f, err = os.OpenFile(filepath.Join(s.dir, logFile), os.O_WRONLY|os.O_APPEND, 0o640); err != nil {
		return err
	}
	s.w.Reset(s.f)
	return nil
}

func (s *storage) close() error {
	err := s.w.Flush()
	return errors.Join(err, s.f.Close())
}

func writeRecord(w io.Writer, b []byte) error {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(b)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(b, crcTable))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readRecord(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n > maxRecord {
		return nil, errors.New("record too large")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if crc32.Checksum(b, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
		return nil, errors.New("bad checksum")
	}
	return b, nil
}

// A committed batch is stored as a pre-prepare message (view, seq,
// digest, batch) followed by its results, reusing the wire encoding.
func encodeCommitted(c protocol.Committed) []byte {
	m := protocol.Message{Kind: protocol.KindPrePrepare, View: c.View, Seq: c.Seq, Digest: c.Digest, Batch: c.Batch}
	b := wire.Append(nil, &m)
	out := binary.AppendUvarint(nil, uint64(len(b)))
	out = append(out, b...)
	out = binary.AppendUvarint(out, uint64(len(c.Results)))
	for _, r := range c.Results {
		out = binary.AppendUvarint(out, uint64(len(r)))
		out = append(out, r...)
	}
	return out
}

func decodeCommitted(b []byte) (protocol.Committed, error) {
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("pbft: malformed log record")
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	mb, err := field()
	if err != nil {
		return protocol.Committed{}, err
	}
	m, err := wire.Decode(mb)
	if err != nil {
		return protocol.Committed{}, err
	}
	c := protocol.Committed{View: m.View, Seq: m.Seq, Digest: m.Digest, Batch: m.Batch}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return protocol.Committed{}, errors.New("pbft: malformed log record")
	}
	b = b[k:]
	for range n {
		r, err := field()
		if err != nil {
			return protocol.Committed{}, err
		}
		c.Results = append(c.Results, r)
	}
	return c, nil
}

func encodeCheckpoint(cp protocol.Checkpoint) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(cp.Seq))
	b = append(b, cp.Digest[:]...)
	return append(b, cp.Snapshot...)
}

func decodeCheckpoint(b []byte) (protocol.Checkpoint, error) {
	if len(b) < 40 {
		return protocol.Checkpoint{}, errors.New("truncated")
	}
	cp := protocol.Checkpoint{Seq: protocol.Seq(binary.BigEndian.Uint64(b))}
	copy(cp.Digest[:], b[8:40])
	cp.Snapshot = b[40:]
	return cp, nil
}
