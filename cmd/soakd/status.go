package main

import (
	"maps"
	"slices"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/profiling"
	"github.com/soakd/soakd/internal/run"
	"github.com/soakd/soakd/internal/status"
	"github.com/soakd/soakd/internal/telemetry"
)

func newStatusCmd(stdout io.Writer) *cobra.Command {
	var addr, format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running daemon's progress",
		Long: `Ask a running soakd for its progress over HTTP (/api/v1/status) and print
the run id, incarnation, elapsed and target time with a progress bar, the
components' health, active faults and firing alerts.`,
		Example: `  soakd status
  soakd status --addr 127.0.0.1:9477 --format json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return usageError{fmt.Errorf("--format: must be text or json, not %q", format)}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			body, st, err := fetchStatus(ctx, addr)
			if err != nil {
				return err
			}
			if format == "json" {
				_, err = stdout.Write(body)
				return err
			}
			printStatus(stdout, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", telemetry.DefaultListen, "address of the daemon's HTTP server")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func fetchStatus(ctx context.Context, addr string) ([]byte, status.Status, error) {
	var st status.Status
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/api/v1/status", nil)
	if err != nil {
		return nil, st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, st, fmt.Errorf("no soakd answering at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, st, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, st, fmt.Errorf("%s answered %s", addr, resp.Status)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, st, fmt.Errorf("%s: bad status document: %w", addr, err)
	}
	return body, st, nil
}

func printStatus(w io.Writer, st status.Status) {
	el := time.Duration(st.ElapsedSeconds * float64(time.Second)).Round(time.Second)
	target := time.Duration(st.TargetSeconds * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(w, "run        %s (seed %d, incarnation %d, %s)\n", st.RunID, st.Seed, st.Incarnation, st.Phase)
	fmt.Fprintf(w, "progress   %s %5.1f%%  %s / %s\n", progressBar(st.Progress, 30), 100*st.Progress, el, target)
	if st.Progress > 0 && st.Progress < 1 && st.Phase == run.PhaseRunning {
		fmt.Fprintf(w, "remaining  %s\n", (target - el).Round(time.Second))
	}
	fmt.Fprintf(w, "state dir  %s\n", st.StateDir)
	if len(st.Components) == 0 {
		fmt.Fprintln(w, "components none running")
	}
	for _, c := range st.Components {
		h := "healthy"
		if !c.Healthy {
			h = "UNHEALTHY " + c.Detail
		}
		fmt.Fprintf(w, "component  %-10s %s\n", c.Name, h)
		var sum struct {
			Line string `json:"line"`
		}
		if json.Unmarshal(c.Summary, &sum) == nil && sum.Line != "" {
			fmt.Fprintf(w, "           %-10s %s\n", "", sum.Line)
		}
	}
	fmt.Fprintf(w, "faults     %d active\n", len(st.ActiveFaults))
	for _, f := range st.ActiveFaults {
		fmt.Fprintf(w, "  %s on %s until %s\n", f.Kind, f.Target, f.Until.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "alerts     %d firing\n", len(st.FiringAlerts))
	for _, a := range st.FiringAlerts {
		what := ""
		switch {
		case a.Name == leakcheck.AlertCanaryMissed:
			what = "(leak canary " + a.Canary + " went undetected) "
		case a.Canary != "":
			what = "(expected: leak canary " + a.Canary + ") "
		}
		if a.Node != "" {
			what = "(in node process " + a.Node + ") " + what
		}
		fmt.Fprintf(w, "  %s %s since %s %s%s\n", a.Name, a.Signal, a.Since.Format(time.RFC3339), what, a.Evidence)
	}
	printLeakSignals(w, st.LeakSignals)
	printCanaries(w, st.LeakCanaries)
	printResidue(w, st.FaultResidue)
	printCPU(w, st.CPUByStage)
}

// printCPU says what the harness costs next to the components, from the
// last stage CPU sample.
func printCPU(w io.Writer, c *profiling.StageCPU) {
	if c == nil {
		fmt.Fprintln(w, "cpu        not sampled yet (profiling.stage_cpu)")
		return
	}
	if c.At.IsZero() {
		fmt.Fprintf(w, "cpu        not sampled: %s\n", c.Error)
		return
	}
	fmt.Fprintf(w, "cpu        harness %.1f%% of a core, components %.1f%%, runtime %.1f%% (a %.0f s profile at %s)\n",
		100*c.HarnessCores, 100*c.ComponentCores, 100*c.RuntimeCores, c.Seconds, c.At.Format(time.RFC3339))
	for _, s := range c.Stages {
		name := s.Stage
		if name == "" {
			name = "(runtime)"
		}
		fmt.Fprintf(w, "           %-20s %5.1f%%\n", name, 100*s.Cores)
	}
}

// printLeakSignals says, per judged signal, its slope, the smallest leak
// its noise lets soakd see, and the threshold: a detectable slope above
// the threshold means leaks between the two go unseen.
func printLeakSignals(w io.Writer, sigs []leakcheck.SignalView) {
	for _, s := range sigs {
		perMin := func(v float64) string {
			if s.Signal == leakcheck.SignalHeap || s.Signal == leakcheck.SignalRSS {
				return fmt.Sprintf("%.2f MiB/min", v*60/(1<<20))
			}
			return fmt.Sprintf("%.1f/min", v*60)
		}
		line := fmt.Sprintf("leak       %-16s threshold %s", s.Signal, perMin(s.Threshold))
		if s.Slope != nil && s.Detectable != nil {
			line += fmt.Sprintf(", slope %s, detectable from %s (%s window, confidence %s)", perMin(*s.Slope), perMin(*s.Detectable), s.Window, conf(s.Confidence))
			if *s.Detectable > 2*s.Threshold {
				line += ": noisy, leaks below that go unseen"
			}
		} else {
			line += ", window still filling"
		}
		fmt.Fprintln(w, line)
		for _, x := range s.Windows {
			sub := fmt.Sprintf("           %-16s %s window", "", x.Window)
			if x.Factor != 1 {
				sub += fmt.Sprintf(" (fires above %g× the threshold)", x.Factor)
			}
			sub += " at confidence " + conf(x.Confidence)
			if x.Slope != nil && x.Detectable != nil {
				sub += fmt.Sprintf(": slope %s, detectable from %s", perMin(*x.Slope), perMin(*x.Detectable))
			} else {
				sub += ": still filling"
			}
			fmt.Fprintln(w, sub)
		}
	}
}

// printCanaries says of each leak canary whether the alert path caught it
// and how fast.
func printCanaries(w io.Writer, cs []leakcheck.Canary) {
	for _, c := range cs {
		line := fmt.Sprintf("canary     %s: %s %s %s since %s", c.ID, c.Resource, c.Rate, c.Shape, c.Started.Format(time.RFC3339))
		if !c.Ended.IsZero() {
			line += fmt.Sprintf(", ended %s", c.Ended.Format(time.RFC3339))
		}
		switch {
		case !c.DetectedAt.IsZero():
			line += fmt.Sprintf(": detected after %s (the alert path works)", c.DetectionTime().Round(time.Second))
		case c.Missed:
			line += ": MISSED (SoakdCanaryMissed: leak detection is broken)"
		case !c.ExpectsAlert():
			line += ": not expected to alert"
		default:
			line += ": not detected yet"
		}
		fmt.Fprintln(w, line)
	}
}

// conf prints a confidence so that 0.99999 and 0.9999999 stay apart.
func conf(c float64) string { return leakcheck.FormatConfidence(c) }

// printResidue says, per fault kind, how often its injections left
// something behind (the levels after the revert and settle, minus before).
func printResidue(w io.Writer, rs []leakcheck.Residue) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "residue    no fault judged yet")
		return
	}
	fmt.Fprintln(w, "residue    per fault kind: injections judged, of which left something behind")
	for _, r := range rs {
		line := fmt.Sprintf("  %-12s %d judged, %d left something", r.Kind, r.Injections, r.WithResidue)
		if r.Unmeasured > 0 {
			line += fmt.Sprintf(", %d unmeasured (other faults never quiet)", r.Unmeasured)
		}
		over := r.Over()
		for _, sig := range slices.Sorted(maps.Keys(over)) {
			line += fmt.Sprintf("; last: %s %+.0f", sig, over[sig])
		}
		fmt.Fprintln(w, line)
	}
}

func progressBar(frac float64, width int) string {
	frac = min(max(frac, 0), 1)
	n := int(frac*float64(width) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
