package faults

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

// Planned is one fault of the run's timeline: when, for how long, what and
// where. Targets are selectors ("<component>/leader"); who they name is decided
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

// Plan computes the run's whole fault timeline from the config and seed:
// the explicit timeline merged with the seeded random schedule, sorted by
// time. Random faults are drawn from the kinds in faults.random.kinds that
// kinds has and that can aim at a target an enabled component in comps
// offers. It is a pure function: same config, seed and registries, same
// plan.
func Plan(cfg *config.Config, seed uint64, kinds *Registry, comps *components.Registry) ([]Planned, error) {
	end := cfg.Run.Duration.Std()
	var out []Planned
	for i, tf := range cfg.Faults.Timeline {
		out = append(out, Planned{ID: "timeline-" + strconv.Itoa(i), At: tf.At.Std(), Duration: tf.Duration.Std(),
			Kind: tf.Kind, Target: tf.Target, Params: tf.Params, Source: "timeline"})
	}
	if r := cfg.Faults.Random; r != nil {
		out = append(out, randomSchedule(r, seed, end, drawable(cfg, r.Kinds, kinds, comps))...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].At != out[j].At {
			return out[i].At < out[j].At
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// drawKind is a kind the random schedule may draw: its spec and the
// targets it may aim at.
type drawKind struct {
	spec    Spec
	targets []string
}

// drawable lists the named kinds that can be drawn at random in this run,
// each with the targets (component/selector, in registration order) that
// play one of its roles in an enabled component.
func drawable(cfg *config.Config, names []string, kinds *Registry, comps *components.Registry) []drawKind {
	var out []drawKind
	for _, name := range names {
		s, ok := kinds.Spec(name)
		if !ok || s.Draw == nil {
			continue
		}
		var targets []string
		for _, c := range comps.Specs() {
			if c.Enabled != nil && !c.Enabled(cfg) {
				continue
			}
			for _, t := range c.Targets {
				if slices.Contains(s.Roles, t.Role) {
					targets = append(targets, c.Name+"/"+t.Selector)
				}
			}
		}
		if s.Self {
			targets = append(targets, "self")
		}
		if len(targets) > 0 {
			out = append(out, drawKind{spec: s, targets: targets})
		}
	}
	return out
}

func randomSchedule(r *config.RandomFaults, seed uint64, end time.Duration, kinds []drawKind) []Planned {
	h := fnv.New64a()
	h.Write([]byte("faults.random"))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
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
		target := kind.targets[rng.IntN(len(kind.targets))]
		d := lo
		if hi > lo {
			d += time.Duration(rng.Int64N(int64(hi - lo)))
		}
		params := kind.spec.Draw(rng)
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
		out = append(out, Planned{ID: fmt.Sprintf("random-%d", i), At: at, Duration: d, Kind: kind.spec.Name, Target: target,
			Params: params, Source: "random"})
	}
}
