package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
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

// ReplayPlan reads an earlier run's journal and returns the faults that
// run actually injected: the same kinds, resolved targets, parameters,
// offsets and durations, so a failure found on day 2 runs again on demand.
func ReplayPlan(journalPath string) ([]Planned, error) {
	f, err := os.Open(journalPath)
	if err != nil {
		return nil, fmt.Errorf("faults.replay: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []Planned
	for sc.Scan() {
		var e journalEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Type != "fault_injected" {
			continue // a torn or foreign line is not a fault
		}
		kind, _ := e.Fields["kind"].(string)
		target, _ := e.Fields["target"].(string)
		dur, _ := e.Fields["duration_seconds"].(float64)
		if kind == "" || dur <= 0 {
			continue
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
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("faults.replay: %s: %w", journalPath, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
