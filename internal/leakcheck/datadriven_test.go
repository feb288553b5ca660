package leakcheck

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/soakd/soakd/internal/config"
)

// TestDataDriven runs the detector scenarios in testdata/*.txt and the
// series kept from soaks in testdata/regressions/*.txt; the commands are
// described in testdata/README.md. Run with -rewrite to regenerate the
// expected outputs, then review the diff. A run's expectations (expect=,
// by=, ...) are checked here too: a failing one fails the test, with or
// without -rewrite, and datadriven then leaves the file as it was.
func TestDataDriven(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	kept, _ := filepath.Glob(filepath.Join("testdata", "regressions", "*.txt"))
	if files = append(files, kept...); len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, path := range files {
		name, _ := filepath.Rel("testdata", strings.TrimSuffix(path, ".txt"))
		t.Run(filepath.ToSlash(name), func(t *testing.T) {
			t.Parallel()
			f := &ddFile{medians: map[string]time.Duration{}}
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				out, err := f.do(t, td)
				if err != nil { // a usage error: never an expected output
					t.Fatalf("%s: %s: %v", td.Pos, td.FullCmd(), err)
				}
				return out
			})
		})
	}
}

// ddFile is one testdata file's state.
type ddFile struct {
	cfg     DetectorConfig // zero Threshold: no detector command yet
	fsm     AlertFSM
	bytes   bool       // the signal is in bytes: print IEC units
	series  []ddSeries // what the next run replays
	deep    bool       // LEAKCHECK_CLEAN_SEEDS seeds: check, do not compare
	medians map[string]time.Duration
}

// ddSeries is one series to replay: a generated seed or a pasted series.
type ddSeries struct {
	label string
	s     []Sample
	leak  time.Time // when the generated leak starts; zero if none
	rate  float64   // the leak's ramp rate per second, for by=predicted
}

func (f *ddFile) do(t *testing.T, td *datadriven.TestData) (string, error) {
	if f.cfg.Threshold == 0 && td.Cmd != "detector" && td.Cmd != "fit" {
		return "", fmt.Errorf("no detector command yet")
	}
	switch td.Cmd {
	case "detector":
		return f.detector(td)
	case "series":
		return f.paste(td)
	case "generate":
		return f.generate(td)
	case "run":
		return f.run(t, td)
	case "medians":
		return f.compareMedians(td)
	case "fit":
		return f.fit(td)
	}
	return "", fmt.Errorf("unknown command")
}

func (f *ddFile) detector(td *datadriven.TestData) (string, error) {
	a, err := args(td, "threshold", "window", "interval", "confidence", "for", "resolve-after", "min-samples", "plateau")
	if err != nil {
		return "", err
	}
	r, err := config.ParseRate(a["threshold"])
	if err != nil {
		return "", err
	}
	qty, _, _ := strings.Cut(a["threshold"], "/")
	f.bytes = strings.ContainsAny(qty, "Bb")
	c := DetectorConfig{Threshold: float64(r), Window: tWindow, Interval: tInterval}
	f.fsm = AlertFSM{For: tFor}
	for k, set := range map[string]func(string) error{
		"window":        func(v string) (err error) { c.Window, err = parseDur(v); return },
		"interval":      func(v string) (err error) { c.Interval, err = parseDur(v); return },
		"confidence":    func(v string) (err error) { c.Confidence, err = strconv.ParseFloat(v, 64); return },
		"for":           func(v string) (err error) { f.fsm.For, err = strconv.Atoi(v); return },
		"resolve-after": func(v string) (err error) { f.fsm.ResolveAfter, err = strconv.Atoi(v); return },
		"min-samples":   func(v string) (err error) { c.MinSamples, err = strconv.Atoi(v); return },
		"plateau":       func(v string) error { return setPlateau(&c, v) },
	} {
		if v, ok := a[k]; ok {
			if err := set(v); err != nil {
				return "", fmt.Errorf("%s=%s: %w", k, v, err)
			}
		}
	}
	if c = c.WithDefaults(); c.Validate() != nil {
		return "", c.Validate()
	}
	f.cfg = c
	return fmt.Sprintf("threshold %s, window %s, interval %s, confidence %g, for %d, resolve after %d\n"+
		"a verdict needs %d samples reaching back %s; %s\n",
		f.rate(c.Threshold), fmtDur(c.Window), fmtDur(c.Interval), c.Confidence, f.fsm.forN(), f.fsm.resolveN(),
		c.MinSamples, fmtDur(time.Duration(coverage*float64(c.Window))), plateauNote(c)), nil
}

func setPlateau(c *DetectorConfig, v string) (err error) {
	if v == "off" {
		c.DisablePlateau = true
		return nil
	}
	c.PlateauFraction, err = strconv.ParseFloat(v, 64)
	return err
}

func plateauNote(c DetectorConfig) string {
	if c.DisablePlateau {
		return "plateau guard off"
	}
	return "plateau guard: slope of the last " + fmtDur(time.Duration(c.PlateauFraction*float64(c.Window)))
}

// paste reads a raw series: "<time> <value>" lines, whitespace- or
// comma-separated, in time order; # lines are skipped. A time is Unix
// seconds, RFC 3339 or an offset ("15s"), the same kind on every line; a
// value is a number or a byte size ("50MiB").
func (f *ddFile) paste(td *datadriven.TestData) (string, error) {
	if _, err := args(td); err != nil {
		return "", err
	}
	var s []Sample
	var steps []time.Duration
	kind := ""
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, line := range strings.Split(td.Input, "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		fs := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		if len(fs) != 2 {
			return "", fmt.Errorf("line %d: want <time> <value>, got %q", i+1, line)
		}
		at, k, err := parseTime(fs[0])
		if kind = cmp.Or(kind, k); err == nil && k != kind {
			err = fmt.Errorf("%s time after %s times", k, kind)
		}
		v, verr := parseValue(fs[1])
		if err = cmp.Or(err, verr); err == nil && len(s) > 0 && at.Before(s[len(s)-1].T) {
			err = fmt.Errorf("%s is before the previous sample", fs[0])
		}
		if err != nil {
			return "", fmt.Errorf("line %d: %w", i+1, err)
		}
		if len(s) > 0 {
			steps = append(steps, at.Sub(s[len(s)-1].T))
		}
		s = append(s, Sample{T: at, V: v})
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if len(s) < 2 {
		return "", fmt.Errorf("want at least two samples")
	}
	f.series, f.deep = []ddSeries{{label: "series", s: s}}, false
	return fmt.Sprintf("%d samples over %s (median step %s), values %s to %s\n",
		len(s), fmtDur(s[len(s)-1].T.Sub(s[0].T)), fmtDur(medianOf(steps)), f.value(lo), f.value(hi)), nil
}

func parseTime(v string) (time.Time, string, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, "RFC 3339", nil
	}
	sec, frac, _ := strings.Cut(v, ".") // exactly: a float64 loses ns
	if n, err := strconv.ParseInt(sec, 10, 64); err == nil {
		ns, err := strconv.ParseUint((frac + "000000000")[:9], 10, 64)
		if err != nil && frac != "" {
			return time.Time{}, "", fmt.Errorf("bad Unix time %q", v)
		}
		return time.Unix(n, int64(ns)).UTC(), "Unix", nil
	}
	d, err := parseDur(v)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("bad time %q: want Unix seconds, RFC 3339 or an offset (15s)", v)
	}
	return tEpoch.Add(d), "offset", nil
}

// noisePresets are the Go tests' noise models (sim_test.go), by name.
var noisePresets = map[string]noiseModel{
	"none": {}, "heap-gc": heapNoise, "heap-soak": heapClean,
	"goroutines": gorNoise, "goroutines-soak": gorClean, "fds": fdNoise, "fds-soak": fdClean,
}

// generate makes one synthetic series per seed (synthSignal).
func (f *ddFile) generate(td *datadriven.TestData) (string, error) {
	a, err := args(td, "dur", "seed", "seeds", "base", "noise", "leak-at", "ramp", "ramp-for", "step", "logistic", "deep")
	if err != nil {
		return "", err
	}
	sg := synthSignal{integer: !f.bytes, interval: f.cfg.Interval}
	noise, ok := noisePresets[cmp.Or(a["noise"], "none")]
	if !ok {
		return "", fmt.Errorf("noise=%s: want a preset (testdata/README.md)", a["noise"])
	}
	sg.noise = noise
	var e [5]error
	sg.end, e[0] = parseDur(a["dur"])
	sg.base, e[1] = parseValue(cmp.Or(a["base"], "0"))
	sg.leakAt, e[2] = parseDur(cmp.Or(a["leak-at"], "0s"))
	var rate float64
	var shapes []string
	if v, ok := a["ramp"]; ok {
		rate, e[3] = f.parseRate(v)
		sg.shape = linearGrowth(rate)
		shapes = append(shapes, fmt.Sprintf("+%s (%s× threshold)", f.rate(rate), num3(rate/f.cfg.Threshold)))
		if v, ok := a["ramp-for"]; ok {
			stop, err := parseDur(v)
			e[4] = err
			sg.shape = func(s float64) float64 { return rate * min(s, stop.Seconds()) }
			shapes = append(shapes, "for "+v+", then flat")
		}
	}
	if v, ok := a["step"]; ok {
		h, err := parseValue(v)
		e[3] = err
		sg.shape = func(float64) float64 { return h }
		shapes = append(shapes, "step +"+f.value(h))
	}
	if v, ok := a["logistic"]; ok {
		p := strings.Split(v, ",")
		if len(p) != 3 {
			return "", fmt.Errorf("logistic=(height, midpoint, scale)")
		}
		h, err1 := parseValue(p[0])
		mid, err2 := parseDur(p[1])
		sc, err3 := parseDur(p[2])
		e[3] = cmp.Or(err1, err2, err3)
		sg.shape = func(x float64) float64 { return h / (1 + math.Exp(-(x-mid.Seconds())/sc.Seconds())) }
		shapes = append(shapes, fmt.Sprintf("logistic +%s, midpoint %s, scale %s", f.value(h), p[1], p[2]))
	}
	if err := cmp.Or(e[:]...); err != nil {
		return "", err
	}
	if n := len(slices.DeleteFunc([]string{a["ramp"], a["step"], a["logistic"]}, func(s string) bool { return s == "" })); n > 1 {
		return "", fmt.Errorf("want one leak shape: ramp=, step= or logistic=")
	}
	var seeds []uint64
	for _, x := range strings.Split(cmp.Or(a["seeds"], a["seed"], "0"), ",") {
		n, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return "", err
		}
		seeds = append(seeds, n)
	}
	_, f.deep = a["deep"]
	if n, _ := strconv.Atoi(os.Getenv("LEAKCHECK_CLEAN_SEEDS")); !f.deep || n < 1 {
		f.deep = false
	} else {
		first := seeds[0]
		seeds = seeds[:0]
		for i := range uint64(n) {
			seeds = append(seeds, first+100*i)
		}
	}
	f.series = f.series[:0]
	names := make([]string, len(seeds))
	for i, seed := range seeds {
		ds := ddSeries{label: fmt.Sprintf("seed %d", seed), s: sg.samples(seed), rate: rate}
		if sg.shape != nil {
			ds.leak = tEpoch.Add(sg.leakAt)
		}
		f.series, names[i] = append(f.series, ds), strconv.FormatUint(seed, 10)
	}
	if f.deep {
		return td.Expected, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s every %s of %s + noise %s %s", map[bool]string{true: "seed", false: "seeds"}[len(seeds) == 1],
		strings.Join(names, ", "), fmtDur(sg.end),
		fmtDur(sg.interval), f.value(sg.base), cmp.Or(a["noise"], "none"), f.describeNoise(sg.noise))
	if !f.bytes {
		b.WriteString(", whole counts")
	}
	if len(shapes) > 0 {
		fmt.Fprintf(&b, "\nleak from %s: %s", fmtDur(sg.leakAt), strings.Join(shapes, ", "))
	}
	return b.String() + "\n", nil
}

func (f *ddFile) describeNoise(m noiseModel) string {
	var p []string
	add := func(ok bool, format string, a ...any) {
		if ok {
			p = append(p, fmt.Sprintf(format, a...))
		}
	}
	add(m.sawMax > 0, "sawtooth=%s-%s/%s-%s", f.value(m.sawMin), f.value(m.sawMax), fmtDur(m.sawPMin), fmtDur(m.sawPMax))
	add(m.sd > 0, "gauss=%s", f.value(m.sd))
	add(m.uniform > 0, "uniform=%d", m.uniform)
	add(m.ouSD > 0, "wander=%s/%s", f.value(m.ouSD), fmtDur(m.ouTau))
	add(m.spikeP > 0, "spikes=%s@%g", f.value(m.spikeSize), m.spikeP)
	add(m.bumpEvery > 0, "bumps=%s/%s", f.value(m.bumpSize), fmtDur(m.bumpEvery))
	return "(" + strings.Join(p, ", ") + ")"
}

// ddCheck is one expectation of a run: ok says whether a series meets it.
type ddCheck struct {
	desc string
	ok   func(o replayOutcome, ref time.Time) bool
}

// ddExpect are the values of expect=, by what fired and resolved counts.
var ddExpect = map[string]ddCheck{
	"quiet": {"never fires", func(o replayOutcome, ref time.Time) bool { return len(o.at(Fired, ref)) == 0 }},
	"fires": {"fires", func(o replayOutcome, ref time.Time) bool { return len(o.at(Fired, ref)) > 0 }},
	"fires-once": {"fires once and never resolves", func(o replayOutcome, ref time.Time) bool {
		return len(o.at(Fired, ref)) == 1 && len(o.at(Resolved, ref)) == 0
	}},
	"fires-and-resolves": {"fires once and resolves once", func(o replayOutcome, ref time.Time) bool {
		return len(o.at(Fired, ref)) == 1 && len(o.at(Resolved, ref)) == 1
	}},
}

// run replays every current series through the detector and its alert.
func (f *ddFile) run(t *testing.T, td *datadriven.TestData) (string, error) {
	a, err := args(td, "plateau", "transitions", "mk", "label", "expect", "by", "resolved-by", "firing-at",
		"recent-above-threshold", "mk-agrees", "min-verdicts")
	if err != nil || len(f.series) == 0 {
		return "", cmp.Or(err, fmt.Errorf("no series: use series or generate first"))
	}
	cfg := f.cfg
	var b strings.Builder
	if v, ok := a["plateau"]; ok {
		if err := setPlateau(&cfg, v); err != nil {
			return "", err
		}
		fmt.Fprintln(&b, plateauNote(cfg))
	}
	checks, err := f.checks(&b, cfg, a)
	if err != nil {
		return "", err
	}
	_, showMK := a["mk"]
	_, showAll := a["transitions"]
	failed := make([][]string, len(checks))
	var firsts []time.Duration
	for _, sr := range f.series {
		d, err := NewDetector("series", cfg)
		if err != nil {
			return "", err
		}
		o, ref := replay(d, f.fsm, sr.s, sr.leak), sr.refTime()
		fired := o.at(Fired, ref)
		verdict := "quiet"
		if len(fired) > 0 {
			firsts = append(firsts, fired[0])
			verdict = fmt.Sprintf("fired %d, resolved %d", len(fired), len(o.at(Resolved, ref)))
		}
		fmt.Fprintf(&b, "%s: %s in %d verdicts; max slope %s, max lower bound %s\n",
			sr.label, verdict, o.verdicts, f.ofThr(o.maxSlope), f.ofThr(o.maxLower))
		for _, e := range o.events {
			if ev := e.ev; e.tr == Fired || e.tr == Resolved || showAll {
				recent := f.rate(ev.RecentSlope)
				if cfg.DisablePlateau {
					recent = "-"
				}
				fmt.Fprintf(&b, "  %s %s: %s; slope %s, lower %s, recent %s, MK p %.2g\n", sr.at(ev.At), e.tr,
					ev.Reason, f.rate(ev.Slope), f.rate(ev.Lower), recent, ev.MKP)
			}
		}
		if _, ok := a["recent-above-threshold"]; ok {
			fmt.Fprintf(&b, "  once the plateau window is in the leak: %d plateau verdicts, smallest recent slope %s\n",
				o.plateauInLeak, f.ofThr(o.minRecentInLeak))
		}
		if _, ok := a["mk-agrees"]; ok || showMK {
			fmt.Fprintf(&b, "  Mann–Kendall agreed while the bound stayed at or below threshold in %d of %d verdicts\n",
				o.trendOnly, o.verdicts)
		}
		for i, c := range checks {
			if !c.ok(o, ref) {
				failed[i] = append(failed[i], sr.label)
			}
		}
	}
	if l, ok := a["label"]; len(firsts) > 0 && (len(f.series) > 1 || ok) {
		m := medianOf(firsts)
		fmt.Fprintf(&b, "median first firing: %s\n", f.series[0].at(f.series[0].refTime().Add(m)))
		f.medians[l] = m
	}
	bad := false
	for i, c := range checks {
		verdict := "ok"
		if len(failed[i]) > 0 {
			bad, verdict = true, "FAILED for "+strings.Join(failed[i], ", ")
		}
		fmt.Fprintf(&b, "check %s: %s\n", c.desc, verdict)
	}
	if bad { // datadriven then stops the file: -rewrite cannot record it
		t.Errorf("%s: %s\n%s", td.Pos, td.FullCmd(), b.String())
	}
	if f.deep {
		t.Logf("%s: LEAKCHECK_CLEAN_SEEDS run (output not compared):\n%s", td.Pos, b.String())
		return td.Expected, nil
	}
	return b.String(), nil
}

// checks turns a run's expectations into ddChecks. by=predicted+N% writes
// the prediction into b.
func (f *ddFile) checks(b *strings.Builder, cfg DetectorConfig, a map[string]string) ([]ddCheck, error) {
	var cs []ddCheck
	sr := f.series[0] // for times: every series of a generate shares them
	offset := func(k string) (time.Duration, string, error) {
		d, err := parseDur(a[k])
		return d, sr.at(sr.refTime().Add(d)), err
	}
	if v, ok := a["expect"]; ok {
		c, ok := ddExpect[v]
		if !ok {
			return nil, fmt.Errorf("expect=%s: want quiet, fires, fires-once or fires-and-resolves", v)
		}
		cs = append(cs, c)
	}
	if v, ok := a["by"]; ok {
		by, at, err := offset("by")
		desc := "first firing by " + at
		if pct, ok := strings.CutPrefix(v, "predicted+"); ok {
			p, perr := strconv.ParseFloat(strings.TrimSuffix(pct, "%"), 64)
			pred := PredictedDetection(cfg, cfg.Interval, sr.rate, f.fsm.For)
			if err = perr; pred < 0 {
				err = fmt.Errorf("by=%s: no prediction: not a ramp above threshold", v)
			}
			by = pred + time.Duration(p/100*float64(pred))
			fmt.Fprintf(b, "predicted first firing (noiseless ramp): %s\n", sr.at(sr.refTime().Add(pred)))
			desc = fmt.Sprintf("first firing by %s (predicted + %s)", sr.at(sr.refTime().Add(by)), pct)
		}
		if err != nil {
			return nil, err
		}
		cs = append(cs, ddCheck{desc, func(o replayOutcome, ref time.Time) bool {
			fs := o.at(Fired, ref)
			return len(fs) > 0 && fs[0] <= by
		}})
	}
	if _, ok := a["resolved-by"]; ok {
		d, at, err := offset("resolved-by")
		if err != nil {
			return nil, err
		}
		cs = append(cs, ddCheck{"resolved by " + at, func(o replayOutcome, ref time.Time) bool {
			rs := o.at(Resolved, ref)
			return len(rs) > 0 && rs[0] <= d
		}})
	}
	if _, ok := a["firing-at"]; ok {
		d, at, err := offset("firing-at")
		if err != nil {
			return nil, err
		}
		cs = append(cs, ddCheck{"firing at " + at, func(o replayOutcome, ref time.Time) bool { return o.firingAt(ref.Add(d)) }})
	}
	if _, ok := a["recent-above-threshold"]; ok {
		cs = append(cs, ddCheck{"no plateau verdict, recent slope above threshold, once the plateau window is in the leak",
			func(o replayOutcome, _ time.Time) bool {
				return !sr.leak.IsZero() && o.plateauInLeak == 0 && o.minRecentInLeak > cfg.Threshold
			}})
	}
	if v, ok := a["mk-agrees"]; ok {
		p, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
		if err != nil {
			return nil, err
		}
		cs = append(cs, ddCheck{fmt.Sprintf("Mann–Kendall alone agreed in at least %d%% of verdicts", p),
			func(o replayOutcome, _ time.Time) bool { return o.trendOnly >= o.verdicts*p/100 }})
	}
	if v, ok := a["min-verdicts"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, err
		}
		cs = append(cs, ddCheck{fmt.Sprintf("at least %d verdicts", n), func(o replayOutcome, _ time.Time) bool { return o.verdicts >= n }})
	}
	return cs, nil
}

// compareMedians checks that the labelled runs' median first firings come
// in the order given, earliest first.
func (f *ddFile) compareMedians(td *datadriven.TestData) (string, error) {
	var parts []string
	verdict := "ok"
	for i, a := range td.CmdArgs {
		m, ok := f.medians[a.Key]
		if !ok {
			return "", fmt.Errorf("no run with label=%s fired", a.Key)
		}
		if i > 0 && !(f.medians[td.CmdArgs[i-1].Key] < m) {
			verdict = "FAILED"
		}
		parts = append(parts, a.Key+" "+fmtDur(m))
	}
	return fmt.Sprintf("median first firing after the leak: %s: in this order: %s\n", strings.Join(parts, " < "), verdict), nil
}

// fit prints the trend statistics of each input line: values every= apart.
func (f *ddFile) fit(td *datadriven.TestData) (string, error) {
	a, err := args(td, "every", "confidence")
	if err != nil {
		return "", err
	}
	every, err1 := parseDur(cmp.Or(a["every"], "1m"))
	conf, err2 := strconv.ParseFloat(cmp.Or(a["confidence"], "0.99"), 64)
	if err := cmp.Or(err1, err2); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, line := range strings.Split(td.Input, "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		var s []Sample
		for i, x := range strings.Fields(line) {
			v, err := parseValue(x)
			if err != nil {
				return "", err
			}
			s = append(s, Sample{T: tEpoch.Add(time.Duration(i) * every), V: v})
		}
		var e Estimator
		ft := e.Fit(s, conf)
		fmt.Fprintf(&b, "%s: n=%d S=%g Var(S)=%.12g Z=%.12g p=%.12g slope=%s [%s, %s]\n", line, ft.N, ft.S, ft.VarS,
			ft.Z, ft.P, f.rate(ft.Slope), f.rate(ft.Lower), f.rate(ft.Upper))
	}
	return b.String(), nil
}

// args returns td's arguments by key, refusing keys not in allowed: a
// misspelt expectation must not pass silently.
func args(td *datadriven.TestData, allowed ...string) (map[string]string, error) {
	m := map[string]string{}
	for _, a := range td.CmdArgs {
		if !slices.Contains(allowed, a.Key) {
			return nil, fmt.Errorf("unknown argument %q (want %s)", a.Key, strings.Join(allowed, ", "))
		}
		m[a.Key] = strings.Join(a.Vals, ",")
	}
	return m, nil
}

func parseDur(v string) (time.Duration, error) {
	d, err := config.ParseDuration(v)
	return d.Std(), err
}

// parseValue reads a number or a byte size ("50MiB").
func parseValue(v string) (float64, error) {
	if x, err := strconv.ParseFloat(v, 64); err == nil {
		return x, nil
	}
	b, err := config.ParseByteSize(v)
	return float64(b.Bytes()), err
}

// parseRate reads a rate ("2MiB/min", "10/min") or a multiple of the
// threshold ("2x").
func (f *ddFile) parseRate(v string) (float64, error) {
	if x, ok := strings.CutSuffix(v, "x"); ok {
		r, err := strconv.ParseFloat(x, 64)
		return r * f.cfg.Threshold, err
	}
	r, err := config.ParseRate(v)
	return float64(r), err
}

// at writes t relative to the leak's start ("leak+13m45s"), or to the
// series' first sample when it has no leak.
func (sr ddSeries) at(t time.Time) string {
	switch d := t.Sub(sr.refTime()); {
	case sr.leak.IsZero():
		return fmtDur(d)
	case d < 0:
		return "leak-" + fmtDur(-d)
	default:
		return "leak+" + fmtDur(d)
	}
}

func (sr ddSeries) refTime() time.Time {
	if sr.leak.IsZero() {
		return sr.s[0].T
	}
	return sr.leak
}

// fmtDur writes d as the config does ("30m", "1h5m", "13m45s").
func fmtDur(d time.Duration) string { return config.Duration(d).String() }

// num3 writes x to 3 significant digits, without exponents below 1000.
func num3(x float64) string {
	if math.Abs(x) >= 1000 && !math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

// value writes a signal value: bytes in IEC units, counts as numbers.
func (f *ddFile) value(v float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if f.bytes && (math.Abs(v) >= u.size || u.size == 1) && !math.IsInf(v, 0) {
			return num3(v/u.size) + u.name
		}
	}
	return num3(v)
}

// rate writes a per-second rate per minute, the unit thresholds use.
func (f *ddFile) rate(perSec float64) string { return f.value(perSec*60) + "/min" }

// ofThr writes a rate with its multiple of the threshold.
func (f *ddFile) ofThr(perSec float64) string {
	return fmt.Sprintf("%s (%s×)", f.rate(perSec), num3(perSec/f.cfg.Threshold))
}
