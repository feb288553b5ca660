package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/faults"
)

func newPlanCmd(stdout io.Writer, b built) *cobra.Command {
	var cfgPath, format string
	var listKinds bool
	var seed uint64
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the run's whole fault timeline, computed from the seed without running",
		Long: `Print every fault the run will inject: offset, duration, kind, target and
parameters. The plan is a pure function of the config and the seed, so the same
pair always prints the same plan. Targets are selectors (raft/leader) that the
run resolves when the fault fires; the journal records whom they named.
With faults.replay set, the plan is the replayed journal's faults.
--kinds lists the fault kinds this soakd is built with instead: their
parameters, the roles a random fault of each may aim at, and which take nodes
out (they count against faults.blast_radius).`,
		Example: `  soakd plan
  soakd plan --config /etc/soakd/soakd.yaml --format json
  soakd plan --seed 42 | head
  soakd plan --kinds`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return usageError{fmt.Errorf("--format: must be text or json, not %q", format)}
			}
			if listKinds {
				printKinds(stdout, b)
				return nil
			}
			cfg, err := loadConfig(cfgPath, b)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("seed") {
				cfg.Run.Seed = seed
			}
			var plan []faults.Planned
			if cfg.Faults.Replay != "" {
				plan, err = faults.ReplayPlan(cfg.Faults.Replay)
			} else {
				plan, err = faults.Plan(cfg, cfg.Run.Seed, b.faults, b.components)
			}
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"seed": cfg.Run.Seed, "duration_seconds": cfg.Run.Duration.Std().Seconds(), "faults": planJSON(plan)})
			}
			fmt.Fprintf(stdout, "# seed %d, duration %s, %d faults\n", cfg.Run.Seed, cfg.Run.Duration.Std(), len(plan))
			fmt.Fprintf(stdout, "%-12s %-9s %-11s %-16s %-8s %s\n", "OFFSET", "DURATION", "KIND", "TARGET", "SOURCE", "PARAMS")
			for _, p := range plan {
				fmt.Fprintf(stdout, "%-12s %-9s %-11s %-16s %-8s %s\n", p.At.Round(time.Second), p.Duration.Round(time.Second),
					p.Kind, orDash(p.Target), p.Source, params(p.Params))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (default: the embedded default config)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed, overriding run.seed")
	cmd.Flags().BoolVar(&listKinds, "kinds", false, "list the fault kinds this soakd has, with their parameters")
	return cmd
}

// printKinds lists the fault kinds and, for each, what faults.random may
// aim it at among the built components.
func printKinds(w io.Writer, b built) {
	for _, s := range b.faults.Specs() {
		var roles []string
		for _, r := range s.Roles {
			roles = append(roles, string(r))
		}
		if s.Self {
			roles = append(roles, "self")
		}
		random := "random: " + strings.Join(roles, ", ")
		if s.Draw == nil {
			random = "timeline only: " + s.NotRandom
		}
		out := ""
		if s.TakesNodesOut {
			out = "; takes nodes out"
		}
		fmt.Fprintf(w, "%s (%s%s)\n", s.Name, random, out)
		for _, p := range s.Params {
			fmt.Fprintf(w, "  %-14s %s\n", p.Name, p.Doc)
		}
	}
	fmt.Fprintln(w, "\ntargets by role:")
	for _, c := range b.components.Specs() {
		var ts []string
		for _, t := range c.Targets {
			ts = append(ts, string(t.Role)+"="+c.Name+"/"+t.Selector)
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, orDash(strings.Join(ts, " ")))
	}
}

type planEntry struct {
	ID              string            `json:"id"`
	OffsetSeconds   float64           `json:"offset_seconds"`
	DurationSeconds float64           `json:"duration_seconds"`
	Kind            string            `json:"kind"`
	Target          string            `json:"target,omitempty"`
	Params          map[string]string `json:"params,omitempty"`
	Source          string            `json:"source"`
}

func planJSON(plan []faults.Planned) []planEntry {
	out := make([]planEntry, 0, len(plan))
	for _, p := range plan {
		out = append(out, planEntry{ID: p.ID, OffsetSeconds: p.At.Seconds(), DurationSeconds: p.Duration.Seconds(),
			Kind: p.Kind, Target: p.Target, Params: p.Params, Source: p.Source})
	}
	return out
}

func params(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
