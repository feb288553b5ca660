package run

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestJournalRepairsTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := OpenJournal(path, JournalOptions{Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := j.Append("tick", 1, time.Duration(i)*time.Second, map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// kill -9 in the middle of a write leaves half a line.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":4,"time":"2026-`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	j, err = OpenJournal(path, JournalOptions{Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append("after_crash", 2, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadEvents(path, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4: %+v", len(evs), evs)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if evs[3].Type != "after_crash" || evs[3].Incarnation != 2 {
		t.Fatalf("last event %+v", evs[3])
	}
}

func TestJournalPagingAndFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := OpenJournal(path, JournalOptions{Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		typ := "a"
		if i%2 == 1 {
			typ = "b"
		}
		if err := j.Append(typ, 1, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	page, err := ReadEvents(path, 3, 4, "")
	if err != nil || len(page) != 4 || page[0].Seq != 4 || page[3].Seq != 7 {
		t.Fatalf("page after 3 = %+v, %v", page, err)
	}
	bs, _ := ReadEvents(path, 0, 0, "b")
	if len(bs) != 5 {
		t.Fatalf("%d events of type b, want 5", len(bs))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestJournalIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	const maxBytes = maxEventLine + 4096
	var dropped int
	j, err := OpenJournal(path, JournalOptions{Clock: clockwork.NewFakeClock(), MaxBytes: maxBytes, OnDrop: func() { dropped++ }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := j.Append("spam", 1, 0, map[string]any{"i": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxBytes {
		t.Fatalf("journal is %d bytes, bound %d", fi.Size(), maxBytes)
	}
	full, _ := ReadEvents(path, 0, 0, "journal_full")
	if len(full) != 1 {
		t.Fatalf("%d journal_full events, want 1", len(full))
	}
	if dropped == 0 || int64(dropped) != j.Dropped() {
		t.Fatalf("dropped = %d, Dropped() = %d", dropped, j.Dropped())
	}
}

func TestJournalBatchesFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	clock := clockwork.NewFakeClock()
	j, err := OpenJournal(path, JournalOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Append("x", 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	// The flusher writes the buffered event within one sync interval.
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(journalSyncInterval)
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, _ := ReadEvents(path, 0, 0, "")
		if len(evs) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("buffered event never reached the file")
		}
		time.Sleep(time.Millisecond)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

func TestJournalSurvivesAWriteError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	var dropped int
	j, err := OpenJournal(path, JournalOptions{Clock: clockwork.NewFakeClock(), OnDrop: func() { dropped++ }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = j.Append("before", 1, 0, nil)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	// Simulate ENOSPC: the buffered event's flush fails. Recovery points
	// the writer back at the journal file.
	j.mu.Lock()
	j.w = bufio.NewWriterSize(failingWriter{}, 64<<10)
	j.mu.Unlock()
	_ = j.Append("lost", 1, 0, nil)
	if err := j.Sync(); err == nil {
		t.Fatal("flush to a full disk succeeded")
	}
	_ = j.Append("after", 1, 0, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadEvents(path, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "before,before,before,after" || dropped != 1 || j.Dropped() != 1 {
		t.Fatalf("journal = %s, dropped %d/%d; want the lost event counted and the file intact", got, dropped, j.Dropped())
	}
}
