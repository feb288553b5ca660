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

	"github.com/soakd/soakd/internal/tick"
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
	// journalSyncInterval is the batch window: every event reaches the file
	// (the OS) when it is appended, so it survives kill -9 at once; the
	// fsync that makes it survive a power cut follows within this long.
	journalSyncInterval = time.Second
	// maxEventLine caps one encoded event; longer lines are rejected.
	maxEventLine = 1 << 20
)

// Journal is the append-only event log of a run. Append is safe for
// concurrent use; each event is written to the file before Append returns
// (one write call, no user-space buffer), and fsync'd in batches by a
// background flusher, and synchronously by Sync and Close.
type Journal struct {
	path     string
	clock    clockwork.Clock
	log      *slog.Logger
	maxBytes int64

	// syncMu serializes fsyncs (and Close) without holding mu, so Append
	// never waits for the disk to flush.
	syncMu sync.Mutex

	mu      sync.Mutex
	f       *os.File
	w       io.Writer // f; a test swaps it to simulate a full disk
	size    int64
	nextSeq int64
	full    bool
	dropped int64
	closed  bool
	// maxElapsed is the largest elapsed time among the complete events at
	// the journal's tail when it was opened: a resumed run does not go back
	// before what it already journaled.
	maxElapsed time.Duration
	// synced is the file size at the last successful fsync, and unsynced
	// the events written since. A failed write (a full disk) is cut back to
	// the size before it, so it leaves no torn line mid-file; a failed fsync
	// cuts back to synced, since the kernel may have dropped those pages.
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
	tail, err := repairJournal(path, o.Logger)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &Journal{
		path: path, clock: o.Clock, log: o.Logger, maxBytes: o.MaxBytes,
		f: f, w: f, size: tail.size, synced: tail.size, nextSeq: tail.lastSeq + 1, maxElapsed: tail.maxElapsed,
		// The writer stops one event line short of MaxBytes (see Append).
		full:     tail.size >= o.MaxBytes-maxEventLine,
		onAppend: o.OnAppend, onDrop: o.OnDrop,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go j.flushLoop()
	return j, nil
}

// journalTail is what OpenJournal learns from the end of an existing file.
type journalTail struct {
	lastSeq    int64
	size       int64
	maxElapsed time.Duration
}

// repairJournal truncates a partial last line (no trailing newline) and
// reads the last complete event's sequence number, the file size and the
// largest elapsed time among the complete events of the tail.
func repairJournal(path string, log *slog.Logger) (journalTail, error) {
	var t journalTail
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return t, err
	}
	size := st.Size()
	if size == 0 {
		return t, nil
	}
	// Read the tail only: enough to hold the last complete line.
	tailLen := min(size, int64(2*maxEventLine))
	tail := make([]byte, tailLen)
	if _, err := f.ReadAt(tail, size-tailLen); err != nil && !errors.Is(err, io.EOF) {
		return t, fmt.Errorf("read journal tail: %w", err)
	}
	if tail[len(tail)-1] != '\n' {
		cut := bytes.LastIndexByte(tail, '\n') + 1 // 0 when no newline at all
		newSize := size - tailLen + int64(cut)
		log.Warn("journal: dropping torn last line", "path", path, "bytes", size-newSize)
		if err := f.Truncate(newSize); err != nil {
			return t, fmt.Errorf("repair journal: %w", err)
		}
		if err := f.Sync(); err != nil {
			return t, fmt.Errorf("repair journal: %w", err)
		}
		tail = tail[:cut]
		size = newSize
	}
	t.size = size
	if tailLen < st.Size() {
		// The tail starts mid-file: its first line may be cut.
		tail = tail[bytes.IndexByte(tail, '\n')+1:]
	}
	// The last complete line holds the highest sequence number. Elapsed is
	// the maximum over the tail: concurrent appenders stamp their elapsed
	// before taking the lock, so lines may be out of order by a hair.
	for line := range bytes.Lines(tail) {
		var e struct {
			Seq            int64   `json:"seq"`
			ElapsedSeconds float64 `json:"elapsed_seconds"`
		}
		if json.Unmarshal(line, &e) != nil || e.Seq <= 0 {
			continue
		}
		t.lastSeq = e.Seq
		t.maxElapsed = max(t.maxElapsed, secondsToDuration(e.ElapsedSeconds))
	}
	return t, nil
}

// MaxElapsed returns the largest elapsed time recorded by the events at the
// end of the journal when it was opened (0 for a new journal).
func (j *Journal) MaxElapsed() time.Duration { return j.maxElapsed }

// Append writes one event to the file before it returns, so the event
// survives kill -9 of this process; surviving a power cut waits for the
// batch fsync (at most journalSyncInterval later) or Sync. Append never
// waits for an fsync.
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
		e = Event{Seq: j.nextSeq, Time: e.Time, Type: EventJournalFull, Incarnation: incarnation, ElapsedSeconds: e.ElapsedSeconds,
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
		j.writeFailedLocked(err)
		return nil
	}
	j.size += int64(len(line))
	j.nextSeq++
	j.unsynced++
	if j.onAppend != nil {
		j.onAppend(e)
	}
	return nil
}

// Sync fsyncs the events written so far.
func (j *Journal) Sync() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	return j.syncHoldingSyncMu()
}

// syncHoldingSyncMu fsyncs with mu released, so appends go on meanwhile.
func (j *Journal) syncHoldingSyncMu() error {
	j.mu.Lock()
	if j.closed || j.unsynced == 0 {
		j.mu.Unlock()
		return nil
	}
	size, n := j.size, j.unsynced
	j.mu.Unlock()
	err := j.f.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.fsyncFailedLocked(err)
		return fmt.Errorf("journal: fsync: %w", err)
	}
	j.synced = size
	j.unsynced -= n
	return nil
}

// writeFailedLocked cuts off whatever part of the failed line reached the
// file and counts that one event as dropped; events written before it stay.
func (j *Journal) writeFailedLocked(err error) {
	_ = j.f.Truncate(j.size) // O_APPEND: the next write lands at the new end
	j.dropLocked(1, "journal write failed; event dropped", err)
}

// fsyncFailedLocked cuts the file back to its last fsync'd size: after a
// failed fsync the kernel may already have dropped the dirty pages, so
// what follows synced cannot be trusted. Those events count as dropped.
func (j *Journal) fsyncFailedLocked(err error) {
	lost := j.unsynced
	_ = j.f.Truncate(j.synced)
	j.size, j.unsynced = j.synced, 0
	j.dropLocked(lost, "journal fsync failed; events since the last fsync dropped", err)
}

// dropLocked counts lost events; the error is logged at most once a minute.
func (j *Journal) dropLocked(lost int64, msg string, err error) {
	j.dropped += lost
	if j.onDrop != nil {
		for range lost {
			j.onDrop()
		}
	}
	if now := j.clock.Now(); now.Sub(j.lastErr) >= time.Minute {
		j.lastErr = now
		j.log.Error(msg, "path", j.path, "dropped", lost, "err", err)
	}
}

func (j *Journal) flushLoop() {
	defer close(j.done)
	tick.Every(j.stop, j.clock, journalSyncInterval, func(time.Time) {
		if err := j.Sync(); err != nil {
			j.log.Error("journal sync failed", "err", err)
		}
	})
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
		j.syncMu.Lock()
		defer j.syncMu.Unlock()
		j.mu.Lock()
		defer j.mu.Unlock()
		// The last fsync holds mu: no append slips in after it.
		j.closed = true
		if j.unsynced > 0 {
			if err := j.f.Sync(); err != nil {
				j.fsyncFailedLocked(err)
				j.closeErr = fmt.Errorf("journal: fsync: %w", err)
			}
		}
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

// EachEvent calls fn with every event of the journal at path, in order,
// in one pass and one event in memory at a time (a report reads a whole
// 72-hour journal this way). It skips a corrupt line like ReadEvents and
// stops early when fn returns false. A missing journal has no events.
func EachEvent(path string, fn func(Event) bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		if !fn(e) {
			return nil
		}
	}
	return sc.Err()
}

// JournalFile is the journal's name in the state dir.
const JournalFile = journalFile

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
