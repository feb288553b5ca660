package run

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Event is one journal line.
type Event struct {
	Seq         int64     `json:"seq"`
	Time        time.Time `json:"time"`
	Type        string    `json:"type"`
	Incarnation int       `json:"incarnation"`
	// ElapsedSeconds is the run's soak time when the event happened, so a
	// journal can be replayed against the run's own timeline.
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	Fields         map[string]any `json:"fields,omitempty"`
}

// Journal bounds, named so a 72-hour run cannot fill the disk with events.
const (
	// DefaultJournalMaxBytes caps the journal file; past it events are
	// counted as dropped, and one journal_full event marks where.
	DefaultJournalMaxBytes = 256 << 20
	// journalSyncInterval is the batch window: events are fsync'd at most
	// this long after they are written.
	journalSyncInterval = time.Second
	// maxEventLine caps one encoded event; longer lines are rejected.
	maxEventLine = 1 << 20
)

// Journal is the append-only event log of a run. Append is safe for
// concurrent use; writes are buffered and fsync'd in batches by a background
// flusher, and synchronously by Sync and Close.
type Journal struct {
	path     string
	clock    clockwork.Clock
	log      *slog.Logger
	maxBytes int64

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	size    int64
	nextSeq int64
	dirty   bool
	full    bool
	dropped int64
	closed  bool
	// synced is the file size at the last successful fsync, and unsynced
	// the events written since: on a write error (a full disk) the file is
	// cut back to synced and those events are counted as dropped, so one
	// ENOSPC does not leave a torn line mid-file or wedge the writer.
	synced   int64
	unsynced int64
	lastErr  time.Time
	// OnAppend, when set, observes every event written (metrics).
	onAppend func(Event)
	onDrop   func()

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// JournalOptions configures OpenJournal.
type JournalOptions struct {
	Clock    clockwork.Clock
	Logger   *slog.Logger
	MaxBytes int64
	OnAppend func(Event)
	OnDrop   func()
}

// OpenJournal opens (creating if needed) the journal at path, repairing a
// torn last line left by kill -9 mid-write, and starts the batch flusher.
func OpenJournal(path string, o JournalOptions) (*Journal, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultJournalMaxBytes
	}
	lastSeq, size, err := repairJournal(path, o.Logger)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &Journal{
		path: path, clock: o.Clock, log: o.Logger, maxBytes: o.MaxBytes,
		f: f, w: bufio.NewWriterSize(f, 64<<10), size: size, synced: size, nextSeq: lastSeq + 1,
		// The writer stops one event line short of MaxBytes (see Append).
		full:     size >= o.MaxBytes-maxEventLine,
		onAppend: o.OnAppend, onDrop: o.OnDrop,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go j.flushLoop()
	return j, nil
}

// repairJournal truncates a partial last line (no trailing newline) and
// returns the last complete event's sequence number and the file size.
func repairJournal(path string, log *slog.Logger) (lastSeq int64, size int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = st.Size()
	if size == 0 {
		return 0, 0, nil
	}
	// Read the tail only: enough to hold the last complete line.
	tailLen := min(size, int64(2*maxEventLine))
	tail := make([]byte, tailLen)
	if _, err := f.ReadAt(tail, size-tailLen); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, fmt.Errorf("read journal tail: %w", err)
	}
	if tail[len(tail)-1] != '\n' {
		cut := bytes.LastIndexByte(tail, '\n') + 1 // 0 when no newline at all
		newSize := size - tailLen + int64(cut)
		log.Warn("journal: dropping torn last line", "path", path, "bytes", size-newSize)
		if err := f.Truncate(newSize); err != nil {
			return 0, 0, fmt.Errorf("repair journal: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("repair journal: %w", err)
		}
		tail = tail[:cut]
		size = newSize
	}
	// Last complete line holds the highest sequence number.
	lines := bytes.Split(bytes.TrimRight(tail, "\n"), []byte{'\n'})
	for i := len(lines) - 1; i >= 0; i-- {
		var e Event
		if json.Unmarshal(lines[i], &e) == nil && e.Seq > 0 {
			return e.Seq, size, nil
		}
	}
	return 0, size, nil
}

// Append writes one event. It never blocks on disk beyond a buffered write;
// durability comes from the batch flusher or Sync.
func (j *Journal) Append(typ string, incarnation int, elapsed time.Duration, fields map[string]any) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return errors.New("journal closed")
	}
	if j.full {
		j.dropped++
		if j.onDrop != nil {
			j.onDrop()
		}
		return nil
	}
	e := Event{Seq: j.nextSeq, Time: j.clock.Now().UTC(), Type: typ, Incarnation: incarnation, ElapsedSeconds: elapsed.Seconds(), Fields: fields}
	if j.size >= j.maxBytes-maxEventLine {
		// Leave room for the marker so the reader sees why events stop.
		e = Event{Seq: j.nextSeq, Time: e.Time, Type: "journal_full", Incarnation: incarnation, ElapsedSeconds: e.ElapsedSeconds,
			Fields: map[string]any{"max_bytes": j.maxBytes}}
		j.full = true
		j.log.Error("journal full: further events are dropped", "path", j.path, "max_bytes", j.maxBytes)
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: encode %s: %w", typ, err)
	}
	if len(line) >= maxEventLine {
		return fmt.Errorf("journal: %s event is %d bytes, over the %d limit", typ, len(line), maxEventLine)
	}
	line = append(line, '\n')
	if _, err := j.w.Write(line); err != nil {
		j.recoverLocked(err, 1)
		return nil
	}
	j.size += int64(len(line))
	j.nextSeq++
	j.dirty = true
	j.unsynced++
	if j.onAppend != nil {
		j.onAppend(e)
	}
	return nil
}

// Sync flushes buffered events and fsyncs the file.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.syncLocked()
}

func (j *Journal) syncLocked() error {
	if !j.dirty || j.closed {
		return nil
	}
	if err := j.w.Flush(); err != nil {
		j.recoverLocked(err, 0)
		return fmt.Errorf("journal: flush: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		j.recoverLocked(err, 0)
		return fmt.Errorf("journal: fsync: %w", err)
	}
	j.dirty = false
	j.synced, j.unsynced = j.size, 0
	return nil
}

// recoverLocked cuts the file back to its last fsync'd size, resets the
// writer and counts what was lost (the events since, plus extra) as
// dropped. The error is logged at most once a minute.
func (j *Journal) recoverLocked(err error, extra int64) {
	lost := j.unsynced + extra
	_ = j.f.Truncate(j.synced) // O_APPEND: the next write lands at the new end
	j.w.Reset(j.f)
	j.size, j.unsynced, j.dirty = j.synced, 0, false
	j.dropped += lost
	if j.onDrop != nil {
		for range lost {
			j.onDrop()
		}
	}
	if now := j.clock.Now(); now.Sub(j.lastErr) >= time.Minute {
		j.lastErr = now
		j.log.Error("journal write failed; events since the last fsync dropped", "path", j.path, "dropped", lost, "err", err)
	}
}

func (j *Journal) flushLoop() {
	defer close(j.done)
	t := j.clock.NewTicker(journalSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.Chan():
			if err := j.Sync(); err != nil {
				j.log.Error("journal sync failed", "err", err)
			}
		}
	}
}

// Dropped returns how many events were dropped because the journal was full.
func (j *Journal) Dropped() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.dropped
}

// Close stops the flusher, syncs and closes the file. It is idempotent.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		close(j.stop)
		<-j.done
		j.mu.Lock()
		defer j.mu.Unlock()
		j.closeErr = j.syncLocked()
		j.closed = true
		if err := j.f.Close(); j.closeErr == nil {
			j.closeErr = err
		}
	})
	return j.closeErr
}

// ReadEvents returns up to limit events with Seq > after, optionally only
// of one type, reading the journal file at path. A corrupt line is skipped
// rather than failing the whole read: the journal is evidence, and the rest
// of it is still worth having.
func ReadEvents(path string, after int64, limit int, typ string) ([]Event, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	var out []Event
	for sc.Scan() {
		line := sc.Bytes()
		// Every line starts {"seq":N,: skip old events without decoding
		// them, so paging the end of a long journal stays cheap.
		if seq, ok := leadingSeq(line); ok && seq <= after {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			continue
		}
		if e.Seq <= after || (typ != "" && e.Type != typ) {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, sc.Err()
}

// leadingSeq reads the seq of a journal line written by Append, which
// always begins with {"seq":.
func leadingSeq(line []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	var n int64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = n*10 + int64(rest[i]-'0')
	}
	return n, i > 0
}
