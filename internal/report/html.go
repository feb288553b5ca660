package report

import (
	"html/template"
	"io"
	"path"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/report/history"
)

// HTMLOptions say how the page links to files of the state dir.
type HTMLOptions struct {
	// StateDirHref is the state dir relative to where the page is written
	// ("..", for a report in <state dir>/report/); evidence links are made
	// from it. Empty: evidence is listed by path, without links.
	StateDirHref string
	// Window is the leak checker's main window, over which the plots draw
	// the fitted slope (default 30m).
	Window time.Duration
}

// WriteHTML writes r as one self-contained page: inline CSS, plots as
// inline SVG drawn from the history, no script and no network fetch, so
// it reads the same offline and as an attachment.
func WriteHTML(w io.Writer, r Report, h *history.History, o HTMLOptions) error {
	if o.Window <= 0 {
		o.Window = 30 * time.Minute
	}
	figs := figures(r, h, o.Window)
	data := struct {
		R       Report
		Figures []Figure
		Href    string
	}{r, figs, o.StateDirHref}
	return page.Execute(w, data)
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":      dur,
	"per":      perMinute,
	"secs":     seconds,
	"rate":     rate,
	"residue":  residue,
	"faultDur": faultDuration,
	"outcomes": outcomes,
	"migs":     outcomesInt,
	"downtime": downtime,
	"views":    viewChanges,
	"detect":   detectableNote,
	"none":     orNone,
	"svg":      func(b []byte) template.HTML { return template.HTML(b) }, // our own renderer's output
	"upper":    strings.ToUpper,
	"unit":     func(sig string) string { return signalUnits[sig] },
	"time":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"href": func(base, rel string) string {
		if base == "" {
			return ""
		}
		return path.Join(base, rel)
	},
	"params": func(m map[string]string) string {
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, k+"="+m[k])
		}
		return strings.Join(parts, " ")
	},
	"deref":  func(v *float64) float64 { return *v },
	"derefS": func(v *Seconds) Seconds { return *v },
}).Parse(pageTemplate))

const pageTemplate = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>soakd run {{.R.Run.ID}}: {{upper .R.Verdict}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f5f5f5}
.pass{color:#176f2c;font-weight:600}.fail{color:#b00020;font-weight:600}.nodata{color:#8a6d00;font-weight:600}
.verdict{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff}
.v-pass{background:#2e7d32}.v-fail{background:#c62828}.v-incomplete{background:#b28704}
.note{background:#fff8e1;border-left:4px solid #b28704;padding:.4em .8em;margin:.4em 0}
figure{margin:1em 0}figure svg{width:100%;height:auto}code,pre{background:#f5f5f5;padding:.1em .3em}
pre{padding:.6em;overflow-x:auto}.muted{color:#666}
</style></head>
<body>
<h1>soakd run <code>{{.R.Run.ID}}</code> <span class="verdict v-{{.R.Verdict}}">{{upper .R.Verdict}}</span></h1>
<p>Seed {{.R.Run.Seed}}; {{dur .R.Run.Elapsed}} of {{dur .R.Run.Target}} soaked{{if .R.Run.Completed}} (completed){{else}} (not completed){{end}};
{{len .R.Run.Incarnations}} incarnation(s); started {{time .R.Run.StartedAt}}.</p>
{{range .R.Notes}}<p class="note">{{.}}</p>{{end}}

<h2 id="verdicts">Verdicts</h2>
<table><tr><th>target</th><th>measured</th><th>result</th></tr>
{{range .R.Verdicts}}<tr><td>{{.Target}}</td><td>{{.Measured}}</td><td class="{{if eq .Outcome "pass"}}pass{{else if eq .Outcome "fail"}}fail{{else}}nodata{{end}}">{{.Outcome}}</td></tr>
{{else}}<tr><td colspan="3" class="muted">none: no config to judge against</td></tr>{{end}}
</table>

<h2 id="leaks">Leak signals</h2>
{{if .R.Leaks}}<table><tr><th>signal</th><th>threshold</th><th>last slope</th><th>smallest detectable</th><th>alerts</th><th>canary alerts</th></tr>
{{range .R.Leaks}}<tr><td>{{.Signal}}</td><td>{{if gt .Threshold 0.0}}{{per .Threshold .Unit}}{{else}}not judged{{end}}</td>
<td>{{if .Slope}}{{per (deref .Slope) .Unit}}{{else}}no data{{end}}</td><td>{{none (detect .)}}</td><td>{{.Alerts}}</td><td>{{.Canary}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No leak signal was sampled.</p>{{end}}

<h2 id="plots">Plots</h2>
<p class="muted">Shaded: fault windows, labelled by kind. Dashed vertical lines: leak alerts (purple: a canary's).</p>
{{range .Figures}}{{if .Err}}<p class="note">{{.Title}}: the plot could not be drawn: {{.Err}}</p>{{else}}<figure aria-label="{{.Title}}">{{svg .SVG}}</figure>{{end}}
{{else}}<p class="muted">No history in the state dir: nothing to plot.</p>{{end}}

<h2 id="load">Load</h2>
{{if .R.Load}}<table><tr><th>component</th><th>target</th><th>scheduled</th><th>achieved</th><th>ops by outcome</th><th>dropped</th><th>latency p50 / p99</th></tr>
{{range .R.Load}}<tr><td>{{.Component}}</td><td>{{.Target}} ops/s</td><td>{{rate .Scheduled}}</td><td>{{rate .Achieved}}</td><td>{{outcomes .Ops}}</td><td>{{.Dropped}}</td>
<td>{{range .Latency}}{{.Op}} {{secs .P50}} / {{secs .P99}}<br>{{else}}no data{{end}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No open-loop load in the history.</p>{{end}}
{{with .R.PBFT}}<p>PBFT: {{views .}}; {{.LivenessViolations}} liveness violation(s).</p>{{end}}
{{with .R.Migrations}}<p>Migrations: {{migs .ByOutcome}}; {{downtime .}}.</p>{{end}}

<h2 id="faults">Faults</h2>
<p>{{.R.Faults.Total}} injected, {{.R.Faults.Skipped}} skipped, {{.R.Faults.Failed}} failed.</p>
{{if .R.Faults.Rows}}<table><tr><th>start</th><th>id</th><th>kind</th><th>target</th><th>parameters</th><th>duration</th><th>ended by</th><th>verified effect</th><th>residue</th></tr>
{{range .R.Faults.Rows}}<tr><td>{{dur .Start}}</td><td>{{.ID}}</td><td>{{.Kind}}</td><td>{{none .Target}}</td><td>{{params .Params}}</td><td>{{faultDur .}}</td><td>{{none .EndedBy}}</td><td>{{none .Verified}}</td><td>{{residue .}}</td></tr>
{{end}}</table>{{end}}

<h2 id="alerts">Alerts</h2>
{{if .R.Alerts}}{{if gt .R.AlertsTotal (len .R.Alerts)}}<p>{{.R.AlertsTotal}} in all; the first {{len .R.Alerts}}:</p>{{end}}<table><tr><th>fired</th><th>alert</th><th>signal</th><th>window</th><th>slope</th><th>resolved</th><th>canary</th><th>evidence</th></tr>
{{range .R.Alerts}}<tr><td>{{dur .Fired}}</td><td>{{.Name}}</td><td>{{.Subject}}</td><td>{{.Window}}</td><td>{{per .Slope (unit .Signal)}}</td>
<td>{{if .Resolved}}{{dur (derefS .Resolved)}}{{else}}still firing{{end}}</td><td>{{none .Canary}}</td>
<td>{{with .Evidence}}{{$h := href $.Href .}}{{if $h}}<a href="{{$h}}">{{.}}</a>{{else}}{{.}}{{end}}{{else}}—{{end}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No leak alert fired.</p>{{end}}

<h2 id="violations">Invariant violations</h2>
{{if .R.Violations}}<p>{{.R.ViolationsTotal}} in all.</p><table><tr><th>at</th><th>component</th><th>invariant</th><th>detail</th><th>evidence</th></tr>
{{range .R.Violations}}<tr><td>{{dur .At}}</td><td>{{.Component}}</td><td>{{.Invariant}}</td><td>{{none .Detail}}</td>
<td>{{with .Evidence}}{{$h := href $.Href .}}{{if $h}}<a href="{{$h}}">{{.}}</a>{{else}}{{.}}{{end}}{{else}}—{{end}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}

<h2 id="incarnations">Incarnations</h2>
<table><tr><th>#</th><th>started</th><th>at soak time</th><th>version</th><th>ended</th></tr>
{{range .R.Run.Incarnations}}<tr><td>{{.N}}</td><td>{{time .Started}}</td><td>{{dur .At}}</td><td>{{none .Version}}</td><td>{{.Ended}}</td></tr>
{{end}}</table>

<h2 id="reproduce">Reproduce</h2>
{{if .R.Reproduce.Config}}<p>The effective config is <code>{{.R.Reproduce.Config}}</code> in the state dir.</p>{{end}}
<pre>{{.R.Reproduce.Command}}</pre><p>Replay the faults: {{.R.Reproduce.Replay}}</p>
{{if .R.Evidence}}<h2 id="evidence">Evidence</h2><ul>
{{range .R.Evidence}}<li>{{$h := href $.Href .}}{{if $h}}<a href="{{$h}}">{{.}}</a>{{else}}{{.}}{{end}}</li>
{{end}}</ul>{{end}}
</body></html>
`
