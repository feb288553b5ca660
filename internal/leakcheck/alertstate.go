package leakcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/fsutil"
)

// alertStateVersion is the version of the firing-alerts state file.
const alertStateVersion = 1

// resolvedKeep is how long a resolved alert stays in the state file, so
// that after a kill -9 before the dispatcher delivered the resolution (to
// a receiver that is slow or down for a while) the next incarnation sends
// it again rather than leave it firing there.
const resolvedKeep = 5 * time.Minute

// alertState is the state file: at most one alert per signal, firing or
// resolved less than resolvedKeep ago.
type alertState struct {
	Version int          `json:"version"`
	Alerts  []savedAlert `json:"alerts"`
	// Canaries are the leak canaries the run has injected (canary.go), so a
	// resumed run still tells their alerts apart and judges the missed ones.
	Canaries []Canary `json:"canaries,omitempty"`
}

type savedAlert struct {
	Signal      string            `json:"signal"`
	Name        string            `json:"alertname"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"starts_at"`
	EndsAt      time.Time         `json:"ends_at,omitzero"`
}

func saveAlert(signal string, a alert.Alert) savedAlert {
	return savedAlert{Signal: signal, Name: a.Name, Labels: a.Labels, Annotations: a.Annotations,
		StartsAt: a.StartsAt, EndsAt: a.EndsAt}
}

func (s savedAlert) alert() alert.Alert {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	return alert.Alert{Name: s.Name, Labels: s.Labels, Annotations: s.Annotations, StartsAt: s.StartsAt, EndsAt: s.EndsAt}
}

// readAlertState returns the saved state; empty if the file does not
// exist.
func readAlertState(path string) (alertState, error) {
	var st alertState
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return alertState{}, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	if st.Version != alertStateVersion {
		return alertState{}, fmt.Errorf("%s: unknown version %d", path, st.Version)
	}
	return st, nil
}

// writeAlertState replaces the file atomically (temp file, fsync, rename)
// and fsyncs the directory so the rename survives a power cut too.
func writeAlertState(path string, st alertState) error {
	if st.Alerts == nil {
		st.Alerts = []savedAlert{}
	}
	st.Version = alertStateVersion
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteBytes(path, 0o600, append(data, '\n'))
}
