package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// RunbookURL is where alerts and dashboards link for what to do; anchors are
// the lower-cased alert names (GitHub's heading anchors in RUNBOOK.md).
const RunbookURL = "https://github.com/soakd/soakd/blob/main/grafana/RUNBOOK.md"

// sel is the matcher every target carries, so one dashboard serves many soak
// hosts (dashboard-linter's target-job and target-instance rules).
const sel = `job=~"$job",instance=~"$instance"`

// s returns metric{job=~"$job",instance=~"$instance"[,extra...]}.
func s(metric string, extra ...string) string {
	return metric + "{" + strings.Join(append([]string{sel}, extra...), ",") + "}"
}

// rate returns `fn(metric{sel,extra}[$__rate_interval])`.
func rate(fn, metric string, extra ...string) string {
	return fn + "(" + s(metric, extra...) + "[$__rate_interval])"
}

var dsRef = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}

func ptr[T any](v T) *T { return &v }

// target is one PromQL query of a panel.
type target struct {
	expr, legend string
	limit        bool   // drawn as a limit: a dashed red line, no fill
	rightUnit    string // non-empty: drawn on a right-hand axis in this unit
}

func t(expr, legend string) target { return target{expr: expr, legend: legend} }

// asLimit draws the target's series as a limit line (a threshold that comes
// from a metric, such as a configured limit, rather than a constant).
func (q target) asLimit() target { q.limit = true; return q }

// right draws the target's series on a right-hand axis in unit: a second
// quantity beside the panel's own.
func (q target) right(unit string) target { q.rightUnit = unit; return q }

type panelKind int

const (
	timeSeries panelKind = iota
	statPanel
	stateTimeline
)

// panel is the declarative form of a panel; build turns it into SDK builders.
type panel struct {
	kind          panelKind
	title, desc   string
	unit          string
	width, height uint32
	targets       []target
	min, max      *float64
	links         []link // data links on the series
	textMode      common.BigValueTextMode
}

type link struct{ title, url string }

// evidenceLinks point from a per-instance series to the daemon that holds the
// evidence: its /api/v1/alerts lists each firing alert's evidence bundle.
var evidenceLinks = []link{
	{"soakd alerts and evidence paths (${__field.labels.instance})", "http://${__field.labels.instance}/api/v1/alerts"},
	{"soakd status (${__field.labels.instance})", "http://${__field.labels.instance}/api/v1/status"},
}

func ts(title, unit, desc string, targets ...target) panel {
	return panel{kind: timeSeries, title: title, desc: desc, unit: unit, width: 12, height: 8, targets: targets}
}

func st(title, unit, desc string, targets ...target) panel {
	return panel{kind: statPanel, title: title, desc: desc, unit: unit, width: 4, height: 4, targets: targets}
}

func tl(title, unit, desc string, targets ...target) panel {
	return panel{kind: stateTimeline, title: title, desc: desc, unit: unit, width: 12, height: 8, targets: targets}
}

func (p panel) w(width uint32) panel  { p.width = width; return p }
func (p panel) h(height uint32) panel { p.height = height; return p }
func (p panel) lim(min, max float64) panel {
	p.min, p.max = &min, &max
	return p
}
func (p panel) withLinks(l ...link) panel            { p.links = l; return p }
func (p panel) text(m common.BigValueTextMode) panel { p.textMode = m; return p }
func (p panel) refID(i int) string                   { return string(rune('A' + i)) }
func dataLinks(ls []link) []cog.Builder[dashboard.DashboardLink] {
	var out []cog.Builder[dashboard.DashboardLink]
	for _, l := range ls {
		out = append(out, dashboard.NewDashboardLinkBuilder(l.title).Type(dashboard.DashboardLinkTypeLink).Url(l.url).TargetBlank(true))
	}
	return out
}

func (p panel) build(id uint32) cog.Builder[dashboard.Panel] {
	var qs []*prometheus.DataqueryBuilder
	for i, q := range p.targets {
		b := prometheus.NewDataqueryBuilder().RefId(p.refID(i)).Datasource(dsRef).Expr(q.expr).LegendFormat(q.legend)
		if p.kind == statPanel {
			b = b.Instant()
		} else {
			b = b.Range()
		}
		qs = append(qs, b)
	}
	switch p.kind {
	case statPanel:
		b := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Unit(p.unit).
			Datasource(dsRef).Span(p.width).Height(p.height).GraphMode(common.BigValueGraphModeNone).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
		if p.textMode != "" {
			b = b.TextMode(p.textMode)
		}
		if p.min != nil {
			b = b.Min(*p.min).Max(*p.max)
		}
		for _, q := range qs {
			b = b.WithTarget(q)
		}
		if len(p.links) > 0 {
			b = b.DataLinks(dataLinks(p.links))
		}
		return b
	case stateTimeline:
		b := statetimeline.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Unit(p.unit).
			Datasource(dsRef).Span(p.width).Height(p.height).ShowValue(common.VisibilityModeNever).
			Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
				"0": {Text: ptr("ok"), Color: ptr("green"), Index: ptr(int32(0))},
				"1": {Text: ptr("firing"), Color: ptr("red"), Index: ptr(int32(1))},
			}}}})
		for _, q := range qs {
			b = b.WithTarget(q)
		}
		if len(p.links) > 0 {
			b = b.DataLinks(dataLinks(p.links))
		}
		return b
	default:
		b := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Unit(p.unit).
			Datasource(dsRef).Span(p.width).Height(p.height).FillOpacity(10).
			Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom))
		if p.min != nil {
			b = b.Min(*p.min).Max(*p.max)
		}
		for _, q := range qs {
			b = b.WithTarget(q)
		}
		for i, q := range p.targets {
			if props := q.overrides(); len(props) > 0 {
				b = b.WithOverride(dashboard.MatcherConfig{Id: "byFrameRefID", Options: p.refID(i)}, props)
			}
		}
		if len(p.links) > 0 {
			b = b.DataLinks(dataLinks(p.links))
		}
		return b
	}
}

// overrides are the field overrides a time-series target's style needs.
func (q target) overrides() []dashboard.DynamicConfigValue {
	var out []dashboard.DynamicConfigValue
	if q.limit {
		out = append(out,
			dashboard.DynamicConfigValue{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}},
			dashboard.DynamicConfigValue{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			dashboard.DynamicConfigValue{Id: "custom.fillOpacity", Value: 0})
	}
	if q.rightUnit != "" {
		out = append(out,
			dashboard.DynamicConfigValue{Id: "unit", Value: q.rightUnit},
			dashboard.DynamicConfigValue{Id: "custom.axisPlacement", Value: "right"})
	}
	return out
}

// row is a dashboard row and its panels (rows are left expanded).
type row struct {
	title  string
	panels []panel
}

// board is one dashboard.
type board struct {
	file, uid, title, desc string
	rows                   []row
}

func variables() []cog.Builder[dashboard.VariableModel] {
	all := dashboard.VariableOption{Selected: ptr(true), Text: dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}}, Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}}}
	qv := func(name, label, query, desc string) cog.Builder[dashboard.VariableModel] {
		return dashboard.NewQueryVariableBuilder(name).Label(label).Description(desc).
			Datasource(dsRef).Query(dashboard.StringOrMap{String: ptr(query)}).Definition(query).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".+").Current(all)
	}
	return []cog.Builder[dashboard.VariableModel]{
		dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus").
			Description("Prometheus that scrapes soakd (job soakd) and evaluates grafana/prometheus/soakd-rules.yaml"),
		qv("job", "Job", `label_values(soakd_build_info, job)`, "Prometheus job(s) scraping soakd"),
		qv("instance", "Instance", `label_values(soakd_build_info{job=~"$job"}, instance)`, "soakd daemon(s): host:port of each /metrics"),
	}
}

// annotations mark faults and leak alerts on every time-series panel.
func annotations() []cog.Builder[dashboard.AnnotationQuery] {
	return []cog.Builder[dashboard.AnnotationQuery]{
		dashboard.NewAnnotationQueryBuilder().Name("Faults").Datasource(dsRef).Enable(true).IconColor("red").
			Expr(`sum by (job, instance, kind) (` + s("soakd_faults_active") + `) > 0`).
			TitleFormat("fault: {{kind}}").TextFormat("{{kind}} fault active on {{instance}}").TagKeys("kind,instance").Step("15s"),
		dashboard.NewAnnotationQueryBuilder().Name("Leak alerts").Datasource(dsRef).Enable(true).IconColor("orange").
			Expr(s("soakd_leak_firing") + ` > 0`).
			TitleFormat("leak alert: {{signal}}").TextFormat("soakd's leak detector fires for {{signal}} on {{instance}}").TagKeys("signal,instance").Step("15s"),
	}
}

func (b board) build() (dashboard.Dashboard, error) {
	d := dashboard.NewDashboardBuilder(b.title).Uid(b.uid).Description(b.desc).
		Tags([]string{"soakd"}).Editable().Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").Time("now-6h", "now").Timezone("browser").
		Variables(variables()).Annotations(annotations()).
		Links([]cog.Builder[dashboard.DashboardLink]{
			dashboard.NewDashboardLinkBuilder("soakd dashboards").Type(dashboard.DashboardLinkTypeDashboards).
				Tags([]string{"soakd"}).AsDropdown(true).IncludeVars(true).KeepTime(true),
			dashboard.NewDashboardLinkBuilder("Runbook").Type(dashboard.DashboardLinkTypeLink).
				Url(RunbookURL).Icon("doc").TargetBlank(true),
		})
	id := uint32(1)
	for _, r := range b.rows {
		d = d.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		id++
		for _, p := range r.panels {
			d = d.WithPanel(p.build(id))
			id++
		}
	}
	return d.Build()
}

// Boards are the dashboards, in file order.
func boards() []board {
	return []board{overview(), leaks(), components()}
}

// Render builds every dashboard and returns file name → indented JSON.
func Render() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, b := range boards() {
		d, err := b.build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.uid, err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("%s: %w", b.uid, err)
		}
		out[b.file] = buf.Bytes()
	}
	return out, nil
}

// quantiles returns p50, p99 and p99.9 of a histogram per label by.
func quantiles(metric, by string, extra ...string) []target {
	return quantilesOf(metric, by, []string{"0.5", "0.99", "0.999"}, extra...)
}

// quantilesOf returns the quantiles qs of a histogram per job, instance and
// label by (none when by is empty).
func quantilesOf(metric, by string, qs []string, extra ...string) []target {
	group, prefix := "job, instance, le", ""
	if by != "" {
		group, prefix = "job, instance, "+by+", le", "{{"+by+"}} "
	}
	var out []target
	for _, q := range qs {
		name := strings.TrimPrefix(q, "0.")
		if len(name) == 1 {
			name += "0" // p50 reads better than p5
		}
		out = append(out, t(fmt.Sprintf(`histogram_quantile(%s, sum by (%s) (%s))`, q, group, rate("rate", metric+"_bucket", extra...)),
			prefix+"p"+name))
	}
	return out
}

func overview() board {
	return board{
		file: "soakd-overview.json", uid: "soakd-overview", title: "soakd / Overview",
		desc: "One soak run per instance: progress and resumes, load and latency per component, drops, correctness, alerts; faults are annotations.",
		rows: []row{
			{"Run", []panel{
				st("Run progress", "percentunit", "Elapsed soak time over the run's target duration (recording rule soakd:run_progress:ratio). Time does not restart on resume.",
					t(s("soakd:run_progress:ratio"), "{{instance}}")).lim(0, 1),
				st("Elapsed", "s", "Soak time accumulated by this run across all incarnations (soakd_run_elapsed_seconds).",
					t(s("soakd_run_elapsed_seconds"), "{{instance}}")),
				st("Target", "s", "The run's configured duration (run.duration).",
					t(s("soakd_run_target_seconds"), "{{instance}}")),
				st("Incarnation", "none", "1 for a fresh run; each resume after a crash, kill or restart adds 1.",
					t(s("soakd_run_incarnation"), "{{instance}}")),
				st("Version", "none", "soakd build running on each instance.",
					t(s("soakd_build_info"), "{{instance}} {{version}} {{revision}} {{goversion}}")).text(common.BigValueTextModeName).w(8),
				ts("Progress", "percentunit", "Run progress over time; a flat line while the daemon is up means the run stalled (SoakdStalled).",
					t(s("soakd:run_progress:ratio"), "{{instance}}")).lim(0, 1),
				ts("Incarnations", "none", "Steps are resumes: the daemon restarted and continued the same run from its checkpoint.",
					t(s("soakd_run_incarnation"), "{{instance}}")),
			}},
			{"Load", []panel{
				ts("Operation rate by outcome", "ops", "Completed operations per second by component and outcome (soakd_ops_total).",
					t(`sum by (job, instance, component, outcome) (`+rate("rate", "soakd_ops_total")+`)`, "{{component}} {{outcome}}")),
				ts("Offered vs achieved load", "ops", "Open-loop load: the configured target, the arrivals scheduled, and what completed. Achieved below target for 10m fires SoakdLoadBelowTarget.",
					t(s("soakd_load_target_ops_per_second"), "{{component}} target"),
					t(s("soakd_load_scheduled_ops_per_second"), "{{component}} scheduled"),
					t(s("soakd_load_achieved_ops_per_second"), "{{component}} achieved")),
				ts("Operation latency", "s", "p50, p99 and p99.9 of operation latency per component (soakd_op_duration_seconds histogram).",
					quantiles("soakd_op_duration_seconds", "component")...),
				ts("Dropped operations", "ops", "Arrivals dropped because max_in_flight was reached, and ops the checkers dropped from their bounded windows. Open-loop load never queues: drops are the overload signal.",
					t(`sum by (job, instance, component) (`+rate("rate", "soakd_ops_dropped_total")+`)`, "{{component}} load drops"),
					t(`sum by (job, instance) (`+rate("rate", "soakd_check_dropped_ops_total")+`)`, "checker drops")),
				ts("In flight", "short", "Operations started and not yet completed, per component.",
					t(s("soakd_load_in_flight"), "{{component}}")),
				tl("Load below target", "bool", "1 while a component's achieved rate is below its target (soakd_load_below_target).",
					t(s("soakd_load_below_target"), "{{component}}")),
			}},
			{"Correctness", []panel{
				ts("Invariant violations", "short", "Violations per rate interval by component and invariant: lost acknowledged writes, disagreement, non-linearizable histories, corrupted migrations. Any is a bug; SoakdInvariantViolation fires.",
					t(`sum by (job, instance, component, invariant) (`+rate("increase", "soakd_invariant_violations_total")+`)`, "{{component}} {{invariant}}")),
				ts("Checks by result", "cps", "Correctness checks run per second by component, checker and result.",
					t(`sum by (job, instance, component, checker, result) (`+rate("rate", "soakd_checks_total")+`)`, "{{component}} {{checker}} {{result}}")),
			}},
			{"Alerts and faults", []panel{
				tl("Leak alerts (soakd)", "bool", "soakd's own leak detector per signal (soakd_leak_firing); the links open the daemon's /api/v1/alerts with the evidence bundle paths.",
					t(s("soakd_leak_firing"), "{{instance}} {{signal}}")).withLinks(evidenceLinks...),
				ts("Prometheus alerts firing", "short", "Alerts from grafana/prometheus/soakd-rules.yaml firing now, by name and severity (ALERTS).",
					t(`sum by (job, instance, alertname, severity) (ALERTS{alertstate="firing",`+sel+`})`, "{{alertname}} {{severity}}")),
				ts("Faults active", "short", "Faults in force now, by kind; the same intervals are the red annotations on every graph.",
					t(s("soakd_faults_active"), "{{kind}}")),
				ts("Faults injected and fault errors", "short", "Faults injected per rate interval, and faults that failed to inject or revert.",
					t(`sum by (job, instance, kind) (`+rate("increase", "soakd_faults_injected_total")+`)`, "{{kind}} injected"),
					t(`sum by (job, instance, kind) (`+rate("increase", "soakd_fault_errors_total")+`)`, "{{kind}} errors")),
			}},
			{"Harness health", []panel{
				ts("Journal events", "cps", "Events written to the run journal per second, by type.",
					t(`sum by (job, instance, type) (`+rate("rate", "soakd_journal_events_total")+`)`, "{{type}}")),
				ts("Harness errors", "cps", "Errors soakd hit in its own machinery: journal drops at its bound, checkpoint writes, leak sampling, alert delivery.",
					t(rate("rate", "soakd_journal_events_dropped_total"), "journal dropped"),
					t(rate("rate", "soakd_checkpoint_errors_total"), "checkpoint errors"),
					t(rate("rate", "soakd_leak_sample_errors_total"), "leak sample errors"),
					t(`sum by (job, instance, sink) (`+rate("rate", "soakd_alert_send_errors_total")+`)`, "alert send errors {{sink}}")),
			}},
		},
	}
}

// leakSignal describes one leak signal for the Leaks dashboard.
type leakSignal struct {
	name, title, unit, slopeUnit, raw, rawDesc, alert string
}

var leakSignals = []leakSignal{
	{"heap_live_bytes", "Heap live", "bytes", "Bps", "go_gc_heap_live_bytes", "runtime/metrics /gc/heap/live:bytes", "SoakdHeapLeak"},
	{"goroutines", "Goroutines", "short", "suffix: goroutines/s", "go_goroutines", "runtime.NumGoroutine", "SoakdGoroutineLeak"},
	{"open_fds", "Open file descriptors", "short", "suffix: fds/s", "process_open_fds", "/proc/self/fd", "SoakdFDLeak"},
	{"rss_bytes", "Resident memory", "bytes", "Bps", "process_resident_memory_bytes", "/proc/self/stat RSS", "SoakdRSSLeak"},
	{"threads", "OS threads", "short", "suffix: threads/s", "go_threads", "OS threads created by the Go runtime", "SoakdThreadLeak"},
}

func leaks() board {
	rows := []row{{"Alert state", []panel{
		tl("Leak alert state", "bool", "1 while soakd's leak detector fires for a signal (soakd_leak_firing). Evidence bundles (heap and goroutine profiles, summary.json) are under <state-dir>/evidence/; the links open the daemon's /api/v1/alerts, which names each bundle.",
			t(s("soakd_leak_firing"), "{{instance}} {{signal}}")).withLinks(evidenceLinks...),
		ts("Slope over threshold", "percentunit", "Fitted growth slope divided by the configured threshold, per signal (recording rule soakd:leak_slope_threshold:ratio). Above 100% the trend exceeds the threshold; the alert fires once the slope's lower confidence bound does for leakcheck.for evaluations.",
			t(s("soakd:leak_slope_threshold:ratio"), "{{instance}} {{signal}}")),
		ts("Leak alerts fired", "short", "Leak alerts fired per rate interval, by signal (soakd_leak_alerts_total).",
			t(`sum by (job, instance, signal) (`+rate("increase", "soakd_leak_alerts_total")+`)`, "{{signal}}")),
		ts("Sampling errors", "cps", "Failed leak samples per second (procfs or runtime/metrics reads). Persistent errors blind the detector.",
			t(rate("rate", "soakd_leak_sample_errors_total"), "{{instance}}")),
		tl("Disturbed by a fault", "bool", "1 while a fault in force, or settling after its revert, moves the signal on purpose (a connections fault's accepted connections, a squeezed Go memory limit): its samples stay out of the leak window meanwhile (soakd_leak_signal_disturbed).",
			t(s("soakd_leak_signal_disturbed"), "{{instance}} {{signal}}")),
	}}, {"Canaries", []panel{
		tl("Canary in force", "bool", "1 while a leak canary (the leak fault kind, which soakd injects on purpose to prove the alert path) drives the signal, and for leakcheck.window after it ends (soakd_leak_canary_active): an alert on the signal meanwhile is the canary's, labelled canary=\"true\", severity info.",
			t(s("soakd_leak_canary_active"), "{{instance}} {{signal}}")),
		tl("Firing alert is a canary's", "bool", "1 while the signal's firing leak alert is a canary's (soakd_leak_canary_firing): the expected result, not a leak. soakd_leak_firing without it is a real leak.",
			t(s("soakd_leak_canary_firing"), "{{instance}} {{signal}}")),
		ts("Canaries detected and missed", "short", "Leak canaries per rate interval whose alert fired (soakd_leak_canary_detected_total: the alert path proven) and that ended unseen (soakd_leak_canary_missed_total: SoakdCanaryMissed, leak detection broken), by signal.",
			t(`sum by (job, instance, signal) (`+rate("increase", "soakd_leak_canary_detected_total")+`)`, "{{signal}} detected"),
			t(`sum by (job, instance, signal) (`+rate("increase", "soakd_leak_canary_missed_total")+`)`, "{{signal}} missed")),
		ts("Canary detection time", "s", "Time from the last detected canary's start to its alert (soakd_leak_canary_detection_seconds): how fast a leak of the canary's size is caught.",
			t(s("soakd_leak_canary_detection_seconds"), "{{instance}} {{signal}}")),
		tl("Canary missed", "bool", "1 while soakd's SoakdCanaryMissed alert fires for the signal (soakd_leak_canary_missed): a canary ended without its alert, so a real leak of its size would go unseen too.",
			t(s("soakd_leak_canary_missed"), "{{instance}} {{signal}}")),
	}}, {"Node processes", []panel{
		tl("Node leak alert firing", "bool", "1 while the leak alert of a node process fires (soakd_node_leak_firing): a component's node process in mode processes or remote, or a leakcheck.targets entry, judged by the same detector as soakd. Its evidence comes from the node's own profiles.",
			t(s("soakd_node_leak_firing"), "{{component}}/{{node}} {{signal}}")),
		ts("Node goroutines", "short", "Goroutines of each node process, from its goroutine profile (soakd_node_leak_signal_value{signal=\"goroutines\"}).",
			t(s("soakd_node_leak_signal_value", `signal="goroutines"`), "{{component}}/{{node}}")),
		ts("Node live heap", "bytes", "Heap in use right after a GC in each node process, from its heap profile (soakd_node_leak_signal_value{signal=\"heap_live_bytes\"}).",
			t(s("soakd_node_leak_signal_value", `signal="heap_live_bytes"`), "{{component}}/{{node}}")),
		ts("Node slope", "short", "Robust fitted slope of each node signal over the leak window, per second (soakd_node_leak_slope_per_second); compare with soakd_leak_threshold_per_second.",
			t(s("soakd_node_leak_slope_per_second"), "{{component}}/{{node}} {{signal}}")),
		ts("Node samples failed and restarts", "short", "Failed samples per rate interval (soakd_node_leak_sample_errors_total: the node down or unreachable) and new processes seen (soakd_node_leak_incarnations_total: each restart starts the node's windows again).",
			t(`sum by (job, instance, component, node) (`+rate("increase", "soakd_node_leak_sample_errors_total")+`)`, "{{component}}/{{node}} failed"),
			t(`sum by (job, instance, component, node) (`+rate("increase", "soakd_node_leak_incarnations_total")+`)`, "{{component}}/{{node}} restarts")),
	}}}
	for _, sig := range leakSignals {
		sg := `signal="` + sig.name + `"`
		rows = append(rows, row{sig.title, []panel{
			ts(sig.title, sig.unit, fmt.Sprintf("%s as sampled by soakd's leak checker every leakcheck.interval (soakd_leak_signal_value{signal=%q}), and the collector's %s (%s) at scrape time. Faults and leak alerts are annotations.", sig.title, sig.name, sig.raw, sig.rawDesc),
				t(s("soakd_leak_signal_value", sg), "{{instance}} leakcheck sample"),
				t(s(sig.raw), "{{instance}} "+sig.raw)),
			ts(sig.title+" slope vs threshold", sig.slopeUnit, fmt.Sprintf("Robust fitted slope over the leak window, its lower confidence bound, the threshold, and the detectable slope: the smallest leak the signal's current noise lets soakd see (above the threshold, leaks in between go unseen); %s fires when the lower bound stays above the threshold.", sig.alert),
				t(s("soakd_leak_slope_per_second", sg), "{{instance}} slope"),
				t(s("soakd_leak_slope_lower_bound_per_second", sg), "{{instance}} lower bound"),
				t(s("soakd_leak_threshold_per_second", sg), "{{instance}} threshold"),
				t(s("soakd_leak_detectable_slope_per_second", sg), "{{instance}} detectable ({{window}} window)")),
		}})
	}
	return board{
		file: "soakd-leaks.json", uid: "soakd-leaks", title: "soakd / Leaks",
		desc: "soakd watching itself: each leak signal's samples, fitted slope, confidence bound and threshold, and the alert state with links to evidence.",
		rows: rows,
	}
}

// historyChecked are the components with a key-value history, which
// soakd's linearizability checker reads (soakd_checks_total). The others
// verify their own operations (migration checks every migration byte for
// byte) and count only violations: a checks panel for them would be a dead
// query.
var historyChecked = map[string]bool{"raft": true, "pbft": true}

// componentRow is the generic part every component row shows, after the
// component's own panels.
func componentRow(c, title string, extra ...panel) row {
	cm := `component="` + c + `"`
	generic := []panel{
		ts(title+" operation rate", "ops", "Completed "+c+" operations per second by op and outcome.",
			t(`sum by (job, instance, op, outcome) (`+rate("rate", "soakd_ops_total", cm)+`)`, "{{op}} {{outcome}}")),
		ts(title+" latency", "s", "p50, p99 and p99.9 latency of "+c+" operations by op.",
			quantiles("soakd_op_duration_seconds", "op", cm)...),
	}
	if historyChecked[c] {
		generic = append(generic, ts(title+" checks", "cps", "Correctness checks of "+c+" histories per second, by checker and result.",
			t(`sum by (job, instance, checker, result) (`+rate("rate", "soakd_checks_total", cm)+`)`, "{{checker}} {{result}}")))
	}
	generic = append(generic, ts(title+" dropped and violations", "short", "Load arrivals dropped per rate interval, and invariant violations (any is a bug).",
		t(`sum by (job, instance) (`+rate("increase", "soakd_ops_dropped_total", cm)+`)`, "dropped"),
		t(`sum by (job, instance, invariant) (`+rate("increase", "soakd_invariant_violations_total", cm)+`)`, "violation {{invariant}}")))
	if len(generic) == 3 {
		for i := range generic {
			generic[i] = generic[i].w(8) // one line of three
		}
	}
	return row{title, append(extra, generic...)}
}

// pbftPanels are the PBFT row's own panels (package
// internal/components/pbft, metrics.go): views, progress, the bounded
// certificate store, what replicas send and reject.
func pbftPanels() []panel {
	return []panel{
		ts("PBFT view", "short", "The view each running replica is in; a step is a view change (the primary suspected: crashed, partitioned, silent or Byzantine). Replicas in a view change show on the right axis.",
			t(s("soakd_pbft_view"), "{{node}}"),
			t(`sum by (job, instance) (`+s("soakd_pbft_in_view_change")+`)`, "changing view").right("short")).w(8),
		ts("PBFT progress", "short", "The last sequence number each replica executed, and its stable checkpoint (the low watermark h; everything at or below it is garbage-collected). A flat executed line while clients keep calling fires SoakdPBFTStalled.",
			t(s("soakd_pbft_executed_seq"), "{{node}} executed"),
			t(s("soakd_pbft_low_watermark"), "{{node}} stable")).w(8),
		ts("PBFT execution and view changes", "short", "Batches and requests executed per rate interval (all replicas), and views entered by each replica (a view change it completed).",
			t(`sum by (job, instance, kind) (`+rate("increase", "soakd_pbft_executed_total")+`)`, "{{kind}} executed"),
			t(`sum by (job, instance) (`+rate("increase", "soakd_pbft_view_changes_total")+`)`, "view changes").right("short")).w(8),
		ts("PBFT certificate store", "short", "Entries in each replica's message log (certificates per sequence number, checkpoint votes, buffered pre-prepares): bounded by the watermark window, so it must stay flat over a 72-hour run.",
			t(s("soakd_pbft_certificates"), "{{node}}")).w(8),
		ts("PBFT messages rejected", "cps", "Messages replicas rejected per second by reason: bad-mac, bad-signature, bad-request (a pre-prepare ordering a request its client did not authenticate) before the protocol saw them; wrong-view, outside-watermarks, equivocation, bad-digest, not-primary, bad-new-view, stale by the protocol. Expected under byzantine faults (annotations); elsewhere they are a bug.",
			t(`sum by (job, instance, reason) (`+rate("rate", "soakd_pbft_messages_rejected_total")+`)`, "{{reason}}")).w(8),
		ts("PBFT messages sent", "cps", "Protocol messages replicas sent per second by kind (a broadcast counts once), and messages dropped before the protocol (a full link queue or inbox).",
			t(`sum by (job, instance, kind) (`+rate("rate", "soakd_pbft_messages_sent_total")+`)`, "{{kind}}"),
			t(`sum by (job, instance, where) (`+rate("rate", "soakd_pbft_messages_dropped_total")+`)`, "dropped {{where}}")).w(8),
		ts("PBFT batch size", "short", "p50 and p99 of the requests per executed batch: the primary batches while earlier batches are in flight.",
			quantilesOf("soakd_pbft_batch_requests", "", []string{"0.5", "0.99"})...).w(8),
	}
}

// migrationPanels are the Migration row's own panels (package
// internal/components/migration, metrics.go): outcomes, time, downtime
// against its limit, rounds, what went on the wire, and what the
// convergence rule saw and did.
func migrationPanels() []panel {
	p5099 := []string{"0.5", "0.99"}
	return []panel{
		ts("Migrations by outcome", "short", "Finished migrations per rate interval by outcome: ok (moved and verified), failed (rolled back: the guest runs on its source, unchanged), unknown (the commit's answer was lost; resolved out of band). Failures under network and crash faults (annotations) are expected; none ok for 30m while migrations run fires SoakdMigrationsFailing.",
			t(`sum by (job, instance, outcome) (`+rate("increase", "soakd_migration_migrations_total")+`)`, "{{outcome}}")).w(8),
		ts("Migration total time", "s", "p50 and p99 of a migration's total time, first pre-copy round to resume or rollback (soakd_migration_duration_seconds).",
			quantilesOf("soakd_migration_duration_seconds", "", p5099)...).w(8),
		ts("Migration downtime vs limit", "s", "p50 and p99 downtime of migrations that moved their guest: pause to resume as the source saw it (pause_resume) and the guest's own largest heartbeat gap (heartbeat); the dashed red line is the configured components.migration.downtime_limit. pause_resume p99 above the limit over 30m fires SoakdMigrationDowntimeOverLimit.",
			append(quantilesOf("soakd_migration_downtime_seconds", "measure", p5099),
				t(s("soakd_migration_downtime_limit_seconds"), "downtime limit").asLimit())...).w(8),
		ts("Migration bytes and compression", "Bps", "Guest pages sent per second: their size in memory (raw) and on the wire after zero markers, XBZRLE deltas and compression (wire); right axis: raw over wire bytes of the last finished migration.",
			t(`sum by (job, instance, kind) (`+rate("rate", "soakd_migration_bytes_total")+`)`, "{{kind}}"),
			t(s("soakd_migration_compression_ratio"), "compression ratio (raw/wire)").right("none")).w(8),
		ts("Migration bandwidth", "Bps", "Wire bandwidth of the last pre-copy round (measured) and the convergence rule's forecast for the next (predicted), from which it predicts the downtime against the limit.",
			t(s("soakd_migration_bandwidth_bytes_per_second"), "{{kind}}")).w(8),
		ts("Migration dirty rate and throttle", "Bps", "Rate at which the migrating guest dirtied memory in the last round; right axis: the share of its dirty rate auto-converge held back in the last round (0 when unthrottled).",
			t(s("soakd_migration_dirty_rate_bytes_per_second"), "dirty rate"),
			t(s("soakd_migration_throttle_ratio"), "throttle").right("percentunit")).w(8),
		ts("Migration delta cache", "cps", "XBZRLE delta cache lookups of re-sent pages per second: hit (sent as a delta), miss (sent raw), overflow (the delta exceeded its limit, sent raw).",
			t(`sum by (job, instance, result) (`+rate("rate", "soakd_migration_delta_cache_total")+`)`, "{{result}}")).w(8),
		ts("Migration zero pages", "cps", "Zero pages sent as markers per second instead of their contents (soakd_migration_zero_pages_total).",
			t(`sum by (job, instance) (`+rate("rate", "soakd_migration_zero_pages_total")+`)`, "zero pages")).w(8),
		ts("Migration rounds", "short", "p50 and p99 of the pre-copy rounds per migration, the final one included (soakd_migration_rounds). Rounds climbing means the guest dirties memory about as fast as the link moves it.",
			quantilesOf("soakd_migration_rounds", "", p5099)...).w(8),
		// The fleet: where the guests are, and who says so.
		ts("Fleet: guests per host", "short", "Guests on each host as the books and the owner records in Raft say (soakd_migration_host_guests); a crashed host keeps its guests on the books, running nowhere, until it restarts and recreates them. Placement spreads them by balance, link bandwidth and affinity.",
			t(s("soakd_migration_host_guests"), "{{host}}")).w(8),
		ts("Fleet: hosts up and migrations in flight", "short", "Migration hosts up (a crash fault takes one down) and migrations in flight (bounded by load.migration.max_in_flight).",
			t(`sum by (job, instance) (`+s("soakd_migration_host_up")+`)`, "hosts up"),
			t(s("soakd_migration_in_flight"), "in flight")).w(8),
		ts("Fleet: ownership flips", "short", "Owner-record flips at switch-over per rate interval: committed (the record in Raft names the destination before it resumes), unavailable or refused (rolled back: the guest stays on its source), released (handed back after the destination did not resume), unresolved (the run stopped before a read resolved a lost answer). Unavailable flips under Raft faults (annotations) are expected and honest.",
			t(`sum by (job, instance, result) (`+rate("increase", "soakd_migration_ownership_flips_total")+`)`, "{{result}}")).w(8),
		ts("Fleet: ownership claim time", "s", "p50 and p99 of the time to claim a guest's owner record in Raft at switch-over, part of the downtime (soakd_migration_ownership_seconds); it climbs while Raft elects a leader.",
			quantilesOf("soakd_migration_ownership_seconds", "", p5099)...).w(8),
		ts("Fleet: ownership audits", "short", "Audits of every guest against the books and its owner record (after each migration and fault, and every minute) per rate interval: clean, violation (soakd_invariant_violations_total{invariant=~\"migration_placement|migration_ownership\"}), skipped (Raft did not answer).",
			t(`sum by (job, instance, result) (`+rate("increase", "soakd_migration_ownership_audits_total")+`)`, "{{result}}")).w(8),
		ts("Fleet: codec per migration", "short", "Finished migrations by the page codec they used: the configured one, or with compression auto (and in internet mode) the one predicted to move guest memory fastest over the link's measured capacity.",
			t(`sum by (job, instance, codec) (`+rate("increase", "soakd_migration_codec_total")+`)`, "{{codec}}")).w(8),
	}
}

func components() board {
	return board{
		file: "soakd-components.json", uid: "soakd-components", title: "soakd / Components",
		desc: "The components under soak, a row each: Raft consensus internals, PBFT (views, progress, certificate store, messages sent and rejected, batches) and live migration (outcomes, total time, downtime against its limit, rounds, bytes and compression, bandwidth, dirty rate and throttle, delta cache, zero pages), each followed by the component's load, latency, history checks (key-value components) and invariant violations.",
		rows: []row{
			componentRow("raft", "Raft",
				ts("Raft leader changes", "short", "Leader elections per rate interval. Expected around partition and crash faults (annotations); elsewhere they mean instability.",
					t(`sum by (job, instance) (`+rate("increase", "soakd_raft_leader_changes_total")+`)`, "{{instance}}")),
				ts("Raft nodes up", "short", "Raft nodes running and reachable.",
					t(s("soakd_raft_nodes_up"), "{{instance}}")),
				ts("Raft commit and applied index", "short", "Per node: highest committed and highest applied log index.",
					t(s("soakd_raft_commit_index"), "{{node}} commit"),
					t(s("soakd_raft_applied_index"), "{{node}} applied")),
				ts("Raft apply lag", "short", "Per node: committed entries not yet applied to the state machine. Growth means a slow or stuck node.",
					t(s("soakd_raft_apply_lag"), "{{node}}")),
				ts("Raft snapshots", "short", "Snapshots taken per rate interval by node; they bound the log for a 72-hour run.",
					t(`sum by (job, instance, node) (`+rate("increase", "soakd_raft_snapshots_total")+`)`, "{{node}}")),
				ts("Raft log size", "bytes", "On-disk Raft log per node; it must stay bounded (snapshots compact it).",
					t(s("soakd_raft_log_bytes"), "{{node}}")),
			),
			componentRow("pbft", "PBFT", pbftPanels()...),
			componentRow("migration", "Migration", migrationPanels()...),
		},
	}
}
