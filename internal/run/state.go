package run

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/soakd/soakd/internal/fsutil"
)

// File names inside the state dir.
const (
	stateFile   = "run.json"
	journalFile = "journal.jsonl"
	tokenFile   = "token"
	lockFile    = "lock"
	archiveDir  = "previous"
	// ConfigFile is the effective config of the run's latest incarnation.
	ConfigFile = "config.yaml"
)

// stateVersion is bumped when State changes incompatibly.
const stateVersion = 1

// State is the checkpoint of a run: everything needed to resume it.
type State struct {
	Version   int       `json:"version"`
	RunID     string    `json:"run_id"`
	Seed      uint64    `json:"seed"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Elapsed counts soak time only: time the daemon was down between a
	// crash and its restart is not soak time, so it is not added.
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	TargetSeconds  float64   `json:"target_seconds"`
	Incarnation    int       `json:"incarnation"`
	Completed      bool      `json:"completed"`
	CompletedAt    time.Time `json:"completed_at,omitzero"`
}

// Elapsed returns the checkpointed soak time.
func (s State) Elapsed() time.Duration { return secondsToDuration(s.ElapsedSeconds) }

// Target returns the run's target duration.
func (s State) Target() time.Duration { return secondsToDuration(s.TargetSeconds) }

func secondsToDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// ReadState loads the checkpoint of the run in dir. It returns an error
// wrapping fs.ErrNotExist when dir holds no run.
func ReadState(dir string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("state %s is corrupt: %w", filepath.Join(dir, stateFile), err)
	}
	if s.Version != stateVersion {
		return s, fmt.Errorf("state %s has version %d, this soakd reads version %d", filepath.Join(dir, stateFile), s.Version, stateVersion)
	}
	if s.RunID == "" {
		return s, fmt.Errorf("state %s is corrupt: empty run_id", filepath.Join(dir, stateFile))
	}
	return s, nil
}

// writeState replaces the checkpoint atomically: renameio writes a temp file
// in the same dir, fsyncs it and renames it over the old one; the directory
// is fsync'd afterwards so the rename itself survives a power cut.
func writeState(dir string, s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteBytes(filepath.Join(dir, stateFile), 0o600, append(data, '\n')); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// newRunID returns a random, sortable-enough id: UTC date plus 8 random hex
// digits, so ls of archived runs reads in order.
func newRunID(now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

// ensureToken returns the bearer token for mutating HTTP endpoints,
// generating it on first use. It is kept across incarnations so scripts
// holding it keep working after a restart.
func ensureToken(dir string) (string, error) {
	path := filepath.Join(dir, tokenFile)
	data, err := os.ReadFile(path)
	if err == nil && len(data) >= 32 {
		return string(trimNewline(data)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read token: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := fsutil.WriteBytes(path, 0o600, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return tok, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// ReadToken returns the bearer token stored in a state dir, for clients.
func ReadToken(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, tokenFile))
	if err != nil {
		return "", err
	}
	return string(trimNewline(data)), nil
}
