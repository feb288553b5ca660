package faults

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"
)

// journalEvent is the part of a run journal line replay reads. faults does
// not import run (run sits above it), so it reads the JSON itself.
type journalEvent struct {
	Seq            int64          `json:"seq"`
	Type           string         `json:"type"`
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	Fields         map[string]any `json:"fields"`
}

// readJournal calls fn with each decodable line of the journal at path. A
// torn or foreign line is skipped: the rest of the journal still counts.
func readJournal(path string, fn func(journalEvent)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e journalEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			fn(e)
		}
	}
	return sc.Err()
}

// ReplayPlan reads an earlier run's journal and returns the faults that
// run actually injected: the same kinds, resolved targets, parameters,
// offsets and durations, so a failure found on day 2 runs again on demand.
// A fault re-applied after a restart (the same id injected again) is one
// fault: its first injection gives its offset and duration.
func ReplayPlan(journalPath string) ([]Planned, error) {
	var out []Planned
	seen := map[string]bool{}
	err := readJournal(journalPath, func(e journalEvent) {
		if e.Type != EventFaultInjected {
			return
		}
		kind, _ := e.Fields["kind"].(string)
		target, _ := e.Fields["target"].(string)
		dur, _ := e.Fields["duration_seconds"].(float64)
		if kind == "" || dur <= 0 {
			return
		}
		if id, _ := e.Fields["id"].(string); id != "" {
			if seen[id] {
				return
			}
			seen[id] = true
		}
		p := Planned{ID: fmt.Sprintf("replay-%d", e.Seq), At: seconds(e.ElapsedSeconds), Duration: seconds(dur),
			Kind: kind, Target: target, Source: "replay"}
		if m, ok := e.Fields["params"].(map[string]any); ok {
			p.Params = map[string]string{}
			for k, v := range m {
				p.Params[k] = fmt.Sprint(v)
			}
		}
		out = append(out, p)
	})
	if err != nil {
		return nil, fmt.Errorf("faults.replay: %s: %w", journalPath, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out, nil
}

// Settled reads a run's journal and returns the plan ids its incarnations
// finished, for RunnerOptions.Settled: reverted at their end, skipped, or
// failed to inject. A fault reverted because soakd was stopping is not
// finished: like one cut off by kill -9, it is re-applied for its
// remaining time when the run resumes. A missing journal settles nothing.
func Settled(journalPath string) (map[string]bool, error) {
	settled := map[string]bool{}
	err := readJournal(journalPath, func(e journalEvent) {
		id, _ := e.Fields["id"].(string)
		if id == "" {
			return
		}
		switch e.Type {
		case EventFaultReverted:
			if why, _ := e.Fields["why"].(string); why != RevertShutdown {
				settled[id] = true
			}
		case EventFaultSkipped:
			settled[id] = true
		case EventFaultFailed:
			if phase, _ := e.Fields["phase"].(string); phase == "inject" {
				settled[id] = true
			}
		}
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("faults: settled faults: %s: %w", journalPath, err)
	}
	return settled, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
