//go:build chaosmesh

package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/chaosmesh"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

func newChaosCmd(stdout, stderr io.Writer, b built) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Chaos Mesh: the run's fault plan as Chaos Mesh objects",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown chaos command %q", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError{errors.New("no chaos command given")}
		},
	}
	render := newChaosRenderCmd(stdout, stderr, b)
	render.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.AddCommand(render)
	return cmd
}

func newChaosRenderCmd(stdout, stderr io.Writer, b built) *cobra.Command {
	var cfgPath, out, namespace, name, crash string
	var seed uint64
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write the run's fault plan as Chaos Mesh objects, for review or GitOps",
		Long: `Render the run's whole fault plan (as soakd plan prints it) as Chaos Mesh
objects: NetworkChaos for partition, delay, loss and bandwidth, PodChaos for
crash, StressChaos for cpu and memory, IOChaos for disk. Each is checked with
Chaos Mesh's own defaulting and validation first. Faults Chaos Mesh has no
counterpart for (byzantine, leak, fds, ...) stay with soakd, and the summary
says why.

With --out, each object goes to DIR/<name>.yaml, with DIR/kustomization.yaml
listing them in plan order and DIR/local-faults.txt the faults kept local;
without it, the objects go to stdout as one YAML stream and the summary to
stderr. Objects are named soakd-<name>-<fault-id>. Applying them all at once
injects every fault at once: to inject each at its planned time, run soakd
with faults.backend: chaosmesh (deploy/kubernetes).`,
		Example: `  soakd chaos render --out chaos/
  soakd chaos render --config soakd.yaml --seed 42 --namespace soak | less
  kubectl apply --dry-run=server -k chaos/`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			probe := chaosmesh.Options{Namespace: namespace, Name: name, CrashAction: crash}
			if err := probe.Check(); err != nil {
				return usageError{err}
			}
			cfg, err := loadConfig(cfgPath, b)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("seed") {
				cfg.Run.Seed = seed
			}
			// What soakd run's chaosmesh backend would create, unless told otherwise.
			cm := cfg.Faults.ChaosMesh
			if !cmd.Flags().Changed("namespace") {
				namespace = cm.Namespace
			}
			if !cmd.Flags().Changed("crash-action") {
				crash = cm.CrashAction
			}
			if !cmd.Flags().Changed("name") {
				name = cm.Name
			}
			if name == "" {
				name = "default"
				if cfgPath != "" {
					name = strings.TrimSuffix(filepath.Base(cfgPath), filepath.Ext(cfgPath))
				}
			}
			plan, err := faultPlan(cfg, b)
			if err != nil {
				return err
			}
			opts := chaosmesh.OptionsFor(cfg, namespace, name)
			opts.CrashAction = crash
			r, err := chaosmesh.Render(plan, opts)
			if err != nil {
				return err
			}
			summary := stderr
			if out == "" {
				if err := chaosmesh.WriteYAML(stdout, r); err != nil {
					return err
				}
			} else {
				if _, err := chaosmesh.WriteDir(out, r); err != nil {
					return err
				}
				summary = stdout
			}
			printRenderSummary(summary, cfg.Run.Seed, cfg.Run.Duration.Std(), len(plan), out, r)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (default: the embedded default config)")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed, overriding run.seed")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the objects to (default: stdout)")
	cmd.Flags().StringVar(&namespace, "namespace", "", "namespace of the objects and of soakd's pods (default: faults.chaosmesh.namespace)")
	cmd.Flags().StringVar(&name, "name", "", "name in the objects' names (default: faults.chaosmesh.name, else the config file's name)")
	cmd.Flags().StringVar(&crash, "crash-action", "", "PodChaos action of a crash: pod-kill or pod-failure (default: faults.chaosmesh.crash_action)")
	return cmd
}

// faultPlan is the run's fault plan: the replayed journal's faults with
// faults.replay set, else the seeded schedule and the timeline.
func faultPlan(cfg *config.Config, b built) ([]faults.Planned, error) {
	if cfg.Faults.Replay != "" {
		return faults.ReplayPlan(cfg.Faults.Replay)
	}
	return faults.Plan(cfg, cfg.Run.Seed, b.faults, b.components)
}

func printRenderSummary(w io.Writer, seed uint64, d time.Duration, faultCount int, out string, r *chaosmesh.Rendering) {
	fmt.Fprintf(w, "# seed %d, duration %s, %d faults\n", seed, d, faultCount)
	byKind := map[string]int{}
	for _, o := range r.Objects {
		byKind[o.Object.GetObjectKind().GroupVersionKind().Kind]++
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, byKind[k]))
	}
	where := "to stdout"
	if out != "" {
		where = "to " + out + " (" + chaosmesh.KustomizationFile + " lists them)"
	}
	fmt.Fprintf(w, "%d Chaos Mesh objects %s: %s\n", len(r.Objects), where, strings.Join(kinds, ", "))
	if len(r.Local) == 0 {
		return
	}
	type group struct{ kind, reason string }
	counts := map[group]int{}
	for _, k := range r.Local {
		counts[group{k.Fault.Kind, k.Reason}]++
	}
	groups := slices.SortedFunc(maps.Keys(counts), func(a, b group) int {
		return strings.Compare(a.kind+a.reason, b.kind+b.reason)
	})
	fmt.Fprintf(w, "%d faults stay with soakd (Chaos Mesh has no counterpart):\n", len(r.Local))
	for _, g := range groups {
		fmt.Fprintf(w, "  %-12s %4d  %s\n", g.kind, counts[g], g.reason)
	}
	if out != "" {
		fmt.Fprintf(w, "each listed in %s\n", filepath.Join(out, chaosmesh.LocalFile))
	}
}
