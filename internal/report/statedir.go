package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/report/history"
	"github.com/soakd/soakd/internal/run"
)

// maxEvidence bounds the evidence files listed.
const maxEvidence = 1000

// ReadStateDir gathers a report's inputs from a run's state dir. Only a
// missing or unreadable run.json is an error: any other missing or broken
// part becomes a note in the report, so a damaged run still gets the
// report of what survived.
func ReadStateDir(dir string) (Inputs, error) {
	st, err := run.ReadState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Inputs{}, fmt.Errorf("%s holds no run (no run.json)", dir)
	}
	if err != nil {
		return Inputs{}, err
	}
	in := Inputs{State: st, StateDir: dir}
	cfgPath := filepath.Join(dir, run.ConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		if in.Config, err = config.Load(cfgPath); err != nil {
			in.Notes = append(in.Notes, fmt.Sprintf("%s: %v", run.ConfigFile, err))
		}
	}
	journal := filepath.Join(dir, run.JournalFile)
	in.Events = func(fn func(run.Event) bool) error { return run.EachEvent(journal, fn) }
	h, err := history.Load(filepath.Join(dir, HistoryFile), history.Options{})
	switch {
	case err != nil:
		in.Notes = append(in.Notes, err.Error())
	case len(h.Series()) > 0:
		in.History = h
	}
	evDir := filepath.Join(dir, "evidence")
	_ = filepath.WalkDir(evDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if len(in.Evidence) >= maxEvidence {
			in.Notes = append(in.Notes, fmt.Sprintf("more than %d evidence files: the list shows the first %d", maxEvidence, maxEvidence))
			return fs.SkipAll
		}
		if rel, err := filepath.Rel(dir, path); err == nil {
			in.Evidence = append(in.Evidence, rel)
		}
		return nil
	})
	sort.Strings(in.Evidence)
	return in, nil
}

// HistoryFile is the run history's name in the state dir (a JSON header
// line, then a zstd frame: see package history).
const HistoryFile = "history.bin"
