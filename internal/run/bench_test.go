package run

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// BenchmarkJournalAppend is the cost an engine pays to journal one event
// (one write call; fsync happens in the background batch).
func BenchmarkJournalAppend(b *testing.B) {
	j, err := OpenJournal(filepath.Join(b.TempDir(), "j.jsonl"), JournalOptions{Clock: clockwork.NewFakeClock()})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	fields := map[string]any{"kind": "partition", "target": "raft/node-2", "duration_seconds": 30.0}
	b.ReportAllocs()
	for b.Loop() {
		if err := j.Append("fault_injected", 1, time.Minute, fields); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpoint is one atomic, fsync'd state write: the bound on how
// often run.checkpoint_interval can sensibly fire.
func BenchmarkCheckpoint(b *testing.B) {
	r, err := Open(Options{StateDir: b.TempDir(), Target: time.Hour, Clock: clockwork.NewFakeClock()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Serve(cancelledCtx(), nil) }()
	for b.Loop() {
		if err := r.Checkpoint(); err != nil {
			b.Fatal(err)
		}
	}
}
