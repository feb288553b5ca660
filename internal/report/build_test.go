package report_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/report"
	"github.com/soakd/soakd/internal/run"
)

// Scenarios of journals (testdata/build/*.txt): each "build" takes one
// event per line as "<elapsed seconds> <type> <fields as JSON>" (the
// incarnation is the count of run_started/run_resumed so far) and prints
// the report's verdicts and tables. Arguments: completed (run.json says
// the run completed), noconfig (no config.yaml).
func TestBuildScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/build", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "build" {
				t.Fatalf("unknown command %q", d.Cmd)
			}
			var events []run.Event
			inc := 0
			sc := bufio.NewScanner(strings.NewReader(d.Input))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				var e run.Event
				var rest string
				if _, err := fmt.Sscanf(line, "%g %s", &e.ElapsedSeconds, &e.Type); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				if i := strings.Index(line, "{"); i >= 0 {
					rest = line[i:]
					if err := json.Unmarshal([]byte(rest), &e.Fields); err != nil {
						t.Fatalf("%q: %v", line, err)
					}
				}
				if e.Type == run.EventRunStarted || e.Type == run.EventRunResumed {
					inc++
				}
				e.Incarnation, e.Seq = inc, int64(len(events)+1)
				events = append(events, e)
			}
			in := report.Inputs{State: run.State{RunID: "r", Seed: 1, TargetSeconds: 3600, Completed: d.HasArg("completed")},
				Events: func(fn func(run.Event) bool) error {
					for _, e := range events {
						if !fn(e) {
							break
						}
					}
					return nil
				}}
			if len(events) > 0 {
				in.State.ElapsedSeconds = events[len(events)-1].ElapsedSeconds
			}
			if !d.HasArg("noconfig") {
				in.Config = config.Default()
			}
			return describe(report.Build(in))
		})
	})
}

// describe prints what a scenario checks, one line per row.
func describe(r report.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict: %s\n", r.Verdict)
	for _, v := range r.Verdicts {
		fmt.Fprintf(&b, "  %s: %s (%s)\n", v.Outcome, v.Target, v.Measured)
	}
	for _, in := range r.Run.Incarnations {
		fmt.Fprintf(&b, "incarnation %d at %gs: %s\n", in.N, float64(in.At), in.Ended)
	}
	fmt.Fprintf(&b, "faults: %d injected, %d skipped, %d failed\n", r.Faults.Total, r.Faults.Skipped, r.Faults.Failed)
	for _, f := range r.Faults.Rows {
		fmt.Fprintf(&b, "  %s %s %s at %gs for %gs ended by %q verified %q residue %v left %v %s\n", f.ID, f.Kind, f.Target,
			float64(f.Start), float64(f.Duration), f.EndedBy, f.Verified, f.Residue, f.LeftResidue, f.ResidueNote)
	}
	for _, a := range r.Alerts {
		res := "firing"
		if a.Resolved != nil {
			res = fmt.Sprintf("resolved at %gs", float64(*a.Resolved))
		}
		fmt.Fprintf(&b, "alert %s %s at %gs, %s, canary %q\n", a.Name, a.Subject(), float64(a.Fired), res, a.Canary)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "violation %s/%s at %gs\n", v.Component, v.Invariant, float64(v.At))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
