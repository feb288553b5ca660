package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteJSON writes r as indented JSON: the verdicts for machines.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// maxMarkdownRows bounds each Markdown table: the summary is for a ticket
// or a pull request; the JSON and HTML carry every row.
const maxMarkdownRows = 50

// WriteMarkdown writes the summary of r for a ticket or a pull request.
func WriteMarkdown(w io.Writer, r Report) error {
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("# soakd run %s: %s\n\n", r.Run.ID, strings.ToUpper(r.Verdict))
	state := "running or stopped before its end"
	if r.Run.Completed {
		state = "completed"
	}
	p("Seed %d, %s of %s soaked (%s), %d incarnation(s), started %s.\n\n", r.Run.Seed, dur(r.Run.Elapsed), dur(r.Run.Target),
		state, len(r.Run.Incarnations), r.Run.StartedAt.UTC().Format(time.RFC3339))
	for _, n := range r.Notes {
		p("> **Note:** %s\n", n)
	}
	if len(r.Notes) > 0 {
		p("\n")
	}

	p("## Verdicts\n\n| target | measured | result |\n|---|---|---|\n")
	for _, v := range r.Verdicts {
		p("| %s | %s | %s |\n", cell(v.Target), cell(v.Measured), outcomeMark(v.Outcome))
	}
	if len(r.Verdicts) == 0 {
		p("| (none: no config to judge against) | | |\n")
	}

	p("\n## Leak signals\n\n")
	if len(r.Leaks) == 0 {
		p("No leak signal was sampled.\n")
	} else {
		p("| signal | threshold | last slope | smallest detectable | alerts | canary alerts |\n|---|---|---|---|---|---|\n")
		for _, l := range r.Leaks {
			slope := "no data"
			if l.Slope != nil {
				slope = perMinute(*l.Slope, l.Unit)
			}
			thr := "not judged"
			if l.Threshold > 0 {
				thr = perMinute(l.Threshold, l.Unit)
			}
			det := detectableNote(l)
			if det == "" {
				det = "no data"
			}
			p("| %s | %s | %s | %s | %d | %d |\n", l.Signal, thr, slope, cell(det), l.Alerts, l.Canary)
		}
	}

	p("\n## Load\n\n")
	if len(r.Load) == 0 {
		p("No open-loop load in the history.\n")
	} else {
		p("| component | target | scheduled | achieved | ops by outcome | dropped | latency p50 / p99 by op |\n|---|---|---|---|---|---|---|\n")
		for _, l := range r.Load {
			var lat []string
			for _, q := range l.Latency {
				lat = append(lat, fmt.Sprintf("%s %s / %s", q.Op, seconds(q.P50), seconds(q.P99)))
			}
			p("| %s | %g ops/s | %s | %s | %s | %d | %s |\n", l.Component, l.Target, rate(l.Scheduled), rate(l.Achieved),
				cell(outcomes(l.Ops)), l.Dropped, cell(orNone(strings.Join(lat, "; "))))
		}
	}
	if m := r.Migrations; m != nil {
		p("\nMigrations: %s; %s.\n", outcomesInt(m.ByOutcome), downtime(m))
	}

	if pb := r.PBFT; pb != nil {
		p("\nPBFT: %s; %d liveness violation(s).\n", viewChanges(pb), pb.LivenessViolations)
	}

	p("\n## Faults\n\n%d injected, %d skipped, %d failed.\n\n", r.Faults.Total, r.Faults.Skipped, r.Faults.Failed)
	if len(r.Faults.Rows) > 0 {
		p("| start | kind | target | duration | verified | residue |\n|---|---|---|---|---|---|\n")
		for i, f := range r.Faults.Rows {
			if i == maxMarkdownRows {
				p("| … %d more (the JSON and HTML keep the first %d) | | | | | |\n", r.Faults.Total-i, len(r.Faults.Rows))
				break
			}
			p("| %s | %s | %s | %s | %s | %s |\n", dur(f.Start), f.Kind, cell(orNone(f.Target)), faultDuration(f), cell(orNone(f.Verified)), cell(residue(f)))
		}
	}

	p("\n## Alerts\n\n")
	if len(r.Alerts) == 0 {
		p("No leak alert fired.\n")
	} else {
		if r.AlertsTotal > len(r.Alerts) {
			p("%d in all; the first %d:\n\n", r.AlertsTotal, len(r.Alerts))
		}
		p("| fired | alert | signal | window | slope | resolved | canary | evidence |\n|---|---|---|---|---|---|---|---|\n")
		for _, a := range r.Alerts {
			res := "still firing"
			if a.Resolved != nil {
				res = dur(*a.Resolved)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", dur(a.Fired), a.Name, a.Subject(), a.Window, perMinute(a.Slope, signalUnits[a.Signal]),
				res, orNone(a.Canary), cell(orNone(a.Evidence)))
		}
	}

	p("\n## Invariant violations\n\n")
	if r.ViolationsTotal == 0 {
		p("None.\n")
	} else {
		p("%d in all.\n\n| at | component | invariant | evidence |\n|---|---|---|---|\n", r.ViolationsTotal)
		for i, v := range r.Violations {
			if i == maxMarkdownRows {
				p("| … %d more | | | |\n", r.ViolationsTotal-i)
				break
			}
			p("| %s | %s | %s | %s |\n", dur(v.At), v.Component, v.Invariant, cell(orNone(v.Evidence)))
		}
	}

	p("\n## Incarnations\n\n| # | started | at | version | ended |\n|---|---|---|---|---|\n")
	for _, in := range r.Run.Incarnations {
		p("| %d | %s | %s | %s | %s |\n", in.N, in.Started.UTC().Format(time.RFC3339), dur(in.At), orNone(in.Version), in.Ended)
	}

	p("\n## Reproduce\n\n")
	if r.Reproduce.Config != "" {
		p("The effective config is `%s` in the state dir.\n\n", r.Reproduce.Config)
	}
	p("```\n%s\n```\n\nReplay the faults: %s\n", r.Reproduce.Command, r.Reproduce.Replay)
	if len(r.Evidence) > 0 {
		p("\nEvidence files: %d under the state dir's `evidence/`.\n", len(r.Evidence))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// downtime describes the migrations' downtime, or says none moved a guest.
func downtime(m *Migrations) string {
	if m.DowntimeP99 == nil {
		return "no migration moved a guest"
	}
	out := fmt.Sprintf("%d moved a guest, downtime p50 %s, p99 %s, max %s", m.Moved, seconds(*m.DowntimeP50),
		seconds(*m.DowntimeP99), seconds(*m.DowntimeMax))
	if m.Limit > 0 {
		out += fmt.Sprintf(" (limit %s)", seconds(m.Limit))
	}
	return out
}

func viewChanges(p *PBFT) string {
	if p.ViewChanges == nil {
		return "view changes not in the history"
	}
	return fmt.Sprintf("%d view change(s) (the most any replica entered)", *p.ViewChanges)
}

func outcomeMark(o string) string {
	switch o {
	case Pass:
		return "✅ pass"
	case Fail:
		return "❌ fail"
	}
	return "⚠️ " + o
}

// cell escapes a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func orNone(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func rate(v *float64) string {
	if v == nil {
		return "no data"
	}
	return fmt.Sprintf("%.1f ops/s", *v)
}

func dur(s Seconds) string {
	return s.Duration().Round(time.Second).String()
}

func faultDuration(f Fault) string {
	if f.EndedBy == "" && f.Duration == 0 {
		return "not reverted"
	}
	return dur(f.Duration)
}

func residue(f Fault) string {
	if f.ResidueNote != "" {
		return f.ResidueNote
	}
	if f.Residue == nil {
		return "not measured"
	}
	if !f.LeftResidue {
		return "none"
	}
	keys := f.ResidueOver
	if len(keys) == 0 { // a journal from before over_tolerance was kept
		keys = sortedKeys(f.Residue)
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %+.0f", k, f.Residue[k]))
	}
	return "left: " + strings.Join(parts, ", ")
}

func outcomes(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return orNone(strings.Join(parts, ", "))
}

func outcomesInt(m map[string]int) string {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = int64(v)
	}
	return outcomes(c)
}
