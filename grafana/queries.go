package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Query is one PromQL expression shipped in this directory.
type Query struct {
	Where string // file and panel/annotation/variable/rule, for messages
	Kind  string // "panel", "annotation", "variable" or "rule"
	Expr  string // as written, with Grafana variables unexpanded
}

// Rule is one rule of a Prometheus rule file.
type Rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// ReadRules decodes a rule file.
func ReadRules(path string) (RuleFile, error) {
	var rf RuleFile
	data, err := os.ReadFile(path)
	if err != nil {
		return rf, err
	}
	if err := yaml.Unmarshal(data, &rf); err != nil {
		return rf, fmt.Errorf("%s: %w", path, err)
	}
	return rf, nil
}

// RuleQueries lists the expression of every rule in a rule file.
func RuleQueries(path string) ([]Query, error) {
	rf, err := ReadRules(path)
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, g := range rf.Groups {
		for i, r := range g.Rules {
			name := r.Record
			if r.Alert != "" {
				name = fmt.Sprintf("alert %s (rule %d)", r.Alert, i)
			}
			out = append(out, Query{Where: filepath.Base(path) + " " + name, Kind: "rule", Expr: r.Expr})
		}
	}
	return out, nil
}

// Recorded returns the names recording rules in a rule file define.
func Recorded(path string) (map[string]bool, error) {
	rf, err := ReadRules(path)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out, nil
}

// DashboardFiles lists the dashboards' JSON files in dir, sorted.
func DashboardFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	sort.Strings(files)
	return files, err
}

// ReadDashboard decodes a dashboard's JSON generically, as Grafana and
// dashboard-linter see it.
func ReadDashboard(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// Panels returns every panel of a decoded dashboard, rows' nested panels
// included, rows themselves excluded.
func Panels(d map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(ps []any)
	walk = func(ps []any) {
		for _, p := range ps {
			pm, _ := p.(map[string]any)
			if pm == nil {
				continue
			}
			if pm["type"] == "row" {
				if nested, ok := pm["panels"].([]any); ok {
					walk(nested)
				}
				continue
			}
			out = append(out, pm)
		}
	}
	ps, _ := d["panels"].([]any)
	walk(ps)
	return out
}

// List returns d[key]["list"] as maps (templating and annotations).
func List(d map[string]any, key string) []map[string]any {
	m, _ := d[key].(map[string]any)
	l, _ := m["list"].([]any)
	var out []map[string]any
	for _, e := range l {
		if em, ok := e.(map[string]any); ok {
			out = append(out, em)
		}
	}
	return out
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// DashboardQueries lists every PromQL expression of the dashboards in dir:
// panel targets, annotation queries, and the series selectors of
// label_values() variable queries.
func DashboardQueries(dir string) ([]Query, error) {
	files, err := DashboardFiles(dir)
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, f := range files {
		d, err := ReadDashboard(f)
		if err != nil {
			return nil, err
		}
		base := filepath.Base(f)
		for _, p := range Panels(d) {
			targets, _ := p["targets"].([]any)
			for _, tg := range targets {
				tm, _ := tg.(map[string]any)
				expr, _ := tm["expr"].(string)
				out = append(out, Query{Where: fmt.Sprintf("%s panel %q %v", base, p["title"], tm["refId"]), Kind: "panel", Expr: expr})
			}
		}
		for _, a := range List(d, "annotations") {
			if expr, ok := a["expr"].(string); ok {
				out = append(out, Query{Where: fmt.Sprintf("%s annotation %q", base, a["name"]), Kind: "annotation", Expr: expr})
			}
		}
		for _, v := range List(d, "templating") {
			q, _ := v["query"].(string)
			if m := labelValuesRE.FindStringSubmatch(q); m != nil {
				out = append(out, Query{Where: fmt.Sprintf("%s variable %q", base, v["name"]), Kind: "variable", Expr: m[1]})
			}
		}
	}
	return out, nil
}

// Expand substitutes Grafana variables ($job, $instance, $__rate_interval,
// ...) in expr with the given values.
func Expand(expr string, vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	// Longest first, so $__rate_interval wins over a shorter prefix.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	var pairs []string
	for _, k := range names {
		pairs = append(pairs, "${"+k+"}", vars[k], "$"+k, vars[k])
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}

// Parse parses a PromQL expression.
func Parse(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(expr)
}

// MetricNames returns the metric names an expression selects, sorted.
// Grafana variables are expanded with placeholders first.
func MetricNames(expr string) ([]string, error) {
	e, err := Parse(Expand(expr, map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}))
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			set[name] = true
		}
		return nil
	})
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// PrometheusOwned are series Prometheus itself writes, not soakd.
var PrometheusOwned = map[string]bool{"ALERTS": true, "ALERTS_FOR_STATE": true, "up": true}

// ExportedMetrics returns, for the dashboards in dashDir and the rule file,
// every metric name soakd must export, mapped to where it is used. Recorded
// series and series Prometheus owns are left out (their inputs are listed).
func ExportedMetrics(dashDir, rulesPath string) (map[string][]string, error) {
	dq, err := DashboardQueries(dashDir)
	if err != nil {
		return nil, err
	}
	rq, err := RuleQueries(rulesPath)
	if err != nil {
		return nil, err
	}
	rec, err := Recorded(rulesPath)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, q := range append(dq, rq...) {
		names, err := MetricNames(q.Expr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.Where, err)
		}
		for _, n := range names {
			if rec[n] || PrometheusOwned[n] {
				continue
			}
			out[n] = append(out[n], q.Where)
		}
	}
	return out, nil
}
