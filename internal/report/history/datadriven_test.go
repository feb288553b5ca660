package history

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	dto "github.com/prometheus/client_model/go"
)

// TestDataDriven runs the scenarios in testdata/*.txt (-rewrite to
// regenerate, then review the diff). Commands:
//
//	new [step=D] [max-points=N] [max-series=N]   selection: g gauge, c counter, h histogram
//	observe at=D                                 one gather, a sample a line:
//	    gauge|counter|untyped NAME[{k="v",...}] VALUE
//	    histogram NAME[{...}] le=B,B buckets=N,N count=N sum=S  (cumulative)
//	restarted at=D
//	reload                                       Save and Load, in memory
//	series                                       the history as the report reads it
func TestDataDriven(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var h *History
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				out, err := ddRun(t, &h, td)
				if err != nil {
					t.Fatalf("%s: %s: %v", td.Pos, td.Cmd, err)
				}
				return out
			})
		})
	}
}

func ddRun(t *testing.T, h **History, td *datadriven.TestData) (string, error) {
	dur := func(key string) (time.Duration, error) {
		var s string
		td.ScanArgs(t, key, &s)
		return time.ParseDuration(s)
	}
	switch td.Cmd {
	case "new":
		opts := Options{Select: []Select{{Name: "g", Kind: Gauge}, {Name: "c", Kind: Counter}, {Name: "h", Kind: Histogram}}}
		if td.HasArg("step") {
			d, err := dur("step")
			if err != nil {
				return "", err
			}
			opts.Step = d
		}
		if td.HasArg("max-points") {
			td.ScanArgs(t, "max-points", &opts.MaxPoints)
		}
		if td.HasArg("max-series") {
			td.ScanArgs(t, "max-series", &opts.MaxSeries)
		}
		*h = New(opts)
		return "ok", nil
	case "observe":
		at, err := dur("at")
		if err != nil {
			return "", err
		}
		mfs, err := parseGather(td.Input)
		if err != nil {
			return "", err
		}
		before := (*h).Dropped()
		(*h).Observe(at, mfs)
		if d := (*h).Dropped() - before; d > 0 {
			return fmt.Sprintf("dropped %d", d), nil
		}
		return "ok", nil
	case "restarted":
		at, err := dur("at")
		if err != nil {
			return "", err
		}
		(*h).Restarted(at)
		return "ok", nil
	case "reload":
		*h = reload(t, *h)
		return "ok", nil
	case "series":
		return formatHistory(*h), nil
	}
	return "", fmt.Errorf("unknown command")
}

func parseGather(input string) ([]*dto.MetricFamily, error) {
	var mfs []*dto.MetricFamily
	types := map[string]dto.MetricType{"gauge": dto.MetricType_GAUGE, "counter": dto.MetricType_COUNTER,
		"untyped": dto.MetricType_UNTYPED, "histogram": dto.MetricType_HISTOGRAM}
	for line := range strings.Lines(input) {
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("line %q: want TYPE NAME VALUE...", line)
		}
		typ, ok := types[f[0]]
		if !ok {
			return nil, fmt.Errorf("line %q: unknown type", line)
		}
		name, labels, err := parseSeries(f[1])
		if err != nil {
			return nil, err
		}
		m := &dto.Metric{Label: labelPairs(labels...)}
		switch typ {
		case dto.MetricType_HISTOGRAM:
			args := map[string]string{}
			for _, kv := range f[2:] {
				k, v, _ := strings.Cut(kv, "=")
				args[k] = v
			}
			bounds, counts := parseFloats(args["le"]), parseFloats(args["buckets"])
			count, _ := strconv.ParseUint(args["count"], 10, 64)
			sum, _ := strconv.ParseFloat(args["sum"], 64)
			m = histMetric(bounds, counts, count, sum, labels...)
		default:
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return nil, err
			}
			switch typ {
			case dto.MetricType_GAUGE:
				m.Gauge = &dto.Gauge{Value: &v}
			case dto.MetricType_COUNTER:
				m.Counter = &dto.Counter{Value: &v}
			default:
				m.Untyped = &dto.Untyped{Value: &v}
			}
		}
		if n := len(mfs); n > 0 && mfs[n-1].GetName() == name && mfs[n-1].GetType() == typ {
			mfs[n-1].Metric = append(mfs[n-1].Metric, m)
			continue
		}
		mfs = append(mfs, family(name, typ, m))
	}
	return mfs, nil
}

// parseSeries splits name{k="v",...}; values hold no commas here.
func parseSeries(s string) (string, []string, error) {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return name, nil, nil
	}
	var kv []string
	for pair := range strings.SplitSeq(strings.TrimSuffix(rest, "}"), ",") {
		k, v, _ := strings.Cut(pair, "=")
		uv, err := strconv.Unquote(v)
		if err != nil {
			return "", nil, fmt.Errorf("label %q: %v", pair, err)
		}
		kv = append(kv, k, uv)
	}
	return name, kv, nil
}

func parseFloats(s string) []float64 {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

func formatHistory(h *History) string {
	var b strings.Builder
	fmt.Fprintf(&b, "step=%v latest=%v incarnations=%v dropped=%d\n", h.Step(), h.Latest(), h.Incarnations(), h.Dropped())
	for _, s := range h.Series() {
		fmt.Fprintf(&b, "%s %s", s.Key, s.Kind)
		if s.Kind == Histogram {
			fmt.Fprintf(&b, " le=%s", formatFloats(s.Bounds))
		}
		b.WriteByte('\n')
		for _, p := range s.Points {
			fmt.Fprintf(&b, "  %v ", p.Start)
			switch s.Kind {
			case Gauge:
				fmt.Fprintf(&b, "min=%g max=%g mean=%g last=%g n=%g", p.Min, p.Max, p.Mean(), p.Last, p.Count)
			case Counter:
				fmt.Fprintf(&b, "+%g", p.Increase)
			case Histogram:
				fmt.Fprintf(&b, "count=+%g sum=+%g buckets=+%s p50=%s p90=%s", p.Count, p.Sum, formatFloats(p.Buckets),
					formatQuantile(p.Quantile(0.5)), formatQuantile(p.Quantile(0.9)))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func formatFloats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

func formatQuantile(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
