package faults

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/soakd/soakd/internal/config"
)

// Planned is one fault of the run's timeline: when, for how long, what and
// where. Targets are selectors ("raft/leader"); who they name is decided
// at injection time and journaled.
type Planned struct {
	ID       string            `json:"id"`
	At       time.Duration     `json:"at"`
	Duration time.Duration     `json:"duration"`
	Kind     string            `json:"kind"`
	Target   string            `json:"target,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Source   string            `json:"source"` // timeline | random | replay
}

// End is when the fault is reverted.
func (p Planned) End() time.Duration { return p.At + p.Duration }

// kindTargets are the selectors a random fault of each kind may pick,
// per component. Selectors name roles, resolved when the fault fires.
var kindTargets = map[string][]string{
	"partition": {"raft/leader", "raft/follower", "raft/minority", "pbft/primary", "pbft/backup"},
	"delay":     {"raft/leader", "raft/follower", "pbft/primary", "pbft/backup", "migration/link"},
	"loss":      {"raft/follower", "pbft/backup", "migration/link"},
	"bandwidth": {"raft/follower", "migration/link"},
	"blackhole": {"raft/follower", "pbft/backup"},
	"reset":     {"raft/follower", "pbft/backup", "migration/link"},
	"duplicate": {"pbft/backup"},
	"reorder":   {"pbft/backup"},
	"crash":     {"raft/leader", "raft/follower", "pbft/primary", "pbft/backup"},
	"byzantine": {"pbft/backup"},
	"cpu":       {"self"},
	"memory":    {"self"},
	"fds":       {"self"},
	"disk":      {"self"},
}

// Plan computes the run's whole fault timeline from the config and seed:
// the explicit timeline merged with the seeded random schedule, sorted by
// time. It is a pure function: same config and seed, same plan.
func Plan(cfg *config.Config, seed uint64) ([]Planned, error) {
	end := cfg.Run.Duration.Std()
	var out []Planned
	for i, tf := range cfg.Faults.Timeline {
		out = append(out, Planned{ID: "timeline-" + strconv.Itoa(i), At: tf.At.Std(), Duration: tf.Duration.Std(),
			Kind: tf.Kind, Target: tf.Target, Params: tf.Params, Source: "timeline"})
	}
	if r := cfg.Faults.Random; r != nil {
		out = append(out, randomSchedule(cfg, r, seed, end)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].At != out[j].At {
			return out[i].At < out[j].At
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func randomSchedule(cfg *config.Config, r *config.RandomFaults, seed uint64, end time.Duration) []Planned {
	h := fnv.New64a()
	h.Write([]byte("faults.random"))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	enabled := map[string]bool{"raft": cfg.Components.Raft.Enabled, "pbft": cfg.Components.PBFT.Enabled,
		"migration": cfg.Components.Migration.Enabled, "self": true}
	// Only kinds with a target among the enabled components can be drawn.
	var kinds []string
	targets := map[string][]string{}
	for _, k := range r.Kinds {
		for _, t := range kindTargets[k] {
			if enabled[componentOf(t)] {
				targets[k] = append(targets[k], t)
			}
		}
		if len(targets[k]) > 0 {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return nil
	}
	mean := r.MeanInterval.Std().Seconds()
	lo, hi := r.Duration.Min.Std(), r.Duration.Max.Std()
	var out []Planned
	var ends []time.Duration // ends of scheduled random faults still in force
	at := time.Duration(0)
	for i := 0; ; i++ {
		at += time.Duration(rng.ExpFloat64() * mean * float64(time.Second))
		if at >= end {
			return out
		}
		kind := kinds[rng.IntN(len(kinds))]
		target := targets[kind][rng.IntN(len(targets[kind]))]
		d := lo
		if hi > lo {
			d += time.Duration(rng.Int64N(int64(hi - lo)))
		}
		params := randomParams(kind, rng)
		// max_concurrent: wait for the earliest running fault to end.
		ends = slices.DeleteFunc(ends, func(e time.Duration) bool { return e <= at })
		if len(ends) >= r.MaxConcurrent {
			slices.Sort(ends)
			at = ends[len(ends)-r.MaxConcurrent]
			if at >= end {
				return out
			}
			ends = slices.DeleteFunc(ends, func(e time.Duration) bool { return e <= at })
		}
		ends = append(ends, at+d)
		out = append(out, Planned{ID: fmt.Sprintf("random-%d", i), At: at, Duration: d, Kind: kind, Target: target,
			Params: params, Source: "random"})
	}
}

// randomParams draws a kind's parameters from ranges an SRE would use on a
// datacenter network and a shared host.
func randomParams(kind string, rng *rand.Rand) map[string]string {
	switch kind {
	case "delay":
		return map[string]string{"latency": strconv.Itoa(20+rng.IntN(181)) + "ms", "jitter": strconv.Itoa(rng.IntN(21)) + "ms"}
	case "loss":
		return map[string]string{"probability": strconv.Itoa(5+rng.IntN(26)) + "%"}
	case "bandwidth":
		return map[string]string{"rate": strconv.Itoa(1+rng.IntN(16)) + "MiB/s"}
	case "partition":
		return map[string]string{"mode": "isolate"}
	case "cpu":
		return map[string]string{"cores": "1"}
	case "memory":
		return map[string]string{"size": strconv.Itoa(128*(1+rng.IntN(4))) + "MiB"}
	case "fds":
		return map[string]string{"count": strconv.Itoa(500 * (1 + rng.IntN(4)))}
	case "disk":
		return map[string]string{"size": strconv.Itoa(256*(1+rng.IntN(4))) + "MiB"}
	case "byzantine":
		modes := []string{"equivocate", "bad_digest", "forge_vote", "replay_vote", "silence"}
		return map[string]string{"mode": modes[rng.IntN(len(modes))]}
	}
	return nil
}

func componentOf(target string) string {
	for i := range target {
		if target[i] == '/' {
			return target[:i]
		}
	}
	return target
}
