package run

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
	// EachEvent streams them all in order, skipping a corrupt line, and
	// stops when told.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("not json\n")
	_ = f.Close()
	var seqs []int64
	if err := EachEvent(path, func(e Event) bool { seqs = append(seqs, e.Seq); return true }); err != nil || len(seqs) != 10 || seqs[9] != 10 {
		t.Fatalf("EachEvent saw %v, %v; want seqs 1..10", seqs, err)
	}
	n := 0
	_ = EachEvent(path, func(Event) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("EachEvent went on after false: %d calls", n)
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

// journalChildEnv makes the test binary a child that journals one event
// and waits to be killed (see TestJournalEventSurvivesKill9).
const journalChildEnv = "SOAKD_TEST_JOURNAL_CHILD"

func journalChild(path string) {
	j, err := OpenJournal(path, JournalOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := j.Append("fault_reverted", 1, 3*time.Second, map[string]any{"id": "timeline-0", "why": "duration"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("appended")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestJournalEventSurvivesKill9 journals an event in a real child process,
// SIGKILLs it 200 ms later (well inside the 1 s fsync batch) and finds the
// event in the file: the write reached the kernel when Append returned.
func TestJournalEventSurvivesKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), journalChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "appended\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exit = %v, want killed", err)
	}
	evs, err := ReadEvents(path, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != "fault_reverted" || evs[0].Fields["id"] != "timeline-0" {
		t.Fatalf("journal after kill -9 = %+v, want the fault_reverted event", evs)
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
	// In the file at once, with no clock advance; not yet fsync'd.
	if evs, _ := ReadEvents(path, 0, 0, ""); len(evs) != 1 {
		t.Fatalf("%d events in the file right after Append, want 1", len(evs))
	}
	unsynced := func() int64 { j.mu.Lock(); defer j.mu.Unlock(); return j.unsynced }
	if n := unsynced(); n != 1 {
		t.Fatalf("unsynced = %d before the batch fsync, want 1", n)
	}
	// The flusher fsyncs it within one sync interval.
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(journalSyncInterval)
	deadline := time.Now().Add(5 * time.Second)
	for unsynced() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the batch fsync never ran")
		}
		time.Sleep(time.Millisecond)
	}
}

// fullDisk writes half of the first line it gets to the file, then fails
// with ENOSPC, as a disk filling up mid-write does; later writes go through.
type fullDisk struct {
	f      *os.File
	failed bool
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if d.failed {
		return d.f.Write(p)
	}
	d.failed = true
	n, _ := d.f.Write(p[:len(p)/2])
	return n, syscall.ENOSPC
}

func TestJournalSurvivesAWriteError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	var dropped int
	j, err := OpenJournal(path, JournalOptions{Clock: clockwork.NewFakeClock(), OnDrop: func() { dropped++ }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_ = j.Append("before", 1, 0, nil)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = j.Append("before", 1, 0, nil) // written, not yet fsync'd: it stays
	j.mu.Lock()
	j.w = &fullDisk{f: j.f}
	j.mu.Unlock()
	_ = j.Append("lost", 1, 0, nil)
	_ = j.Append("after", 1, 0, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for line := range strings.Lines(string(data)) {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("torn line left in the journal: %q", line)
		}
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "before,before,before,after" || dropped != 1 || j.Dropped() != 1 {
		t.Fatalf("journal = %s, dropped %d/%d; want only the failed event dropped and the file intact", got, dropped, j.Dropped())
	}
}
