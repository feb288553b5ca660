package check

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/components"
)

// TestDataDriven runs the history scenarios in testdata/*.txt (format and
// commands: testdata/README.md). Run with -rewrite to regenerate the
// expected outputs, then review the diff.
func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			d := &ddFile{dir: filepath.Dir(path), evidenceDir: filepath.Join(t.TempDir(), "evidence")}
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				out, err := d.run(t, td)
				if err != nil {
					return "error: " + err.Error()
				}
				return out
			})
		})
	}
}

// ddBase is the checker's start: history times are offsets from it.
var ddBase = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// ddFile is the state of one testdata file: the last history and the
// checker the step-by-step commands drive.
type ddFile struct {
	dir, evidenceDir string
	history          []KVOp
	c                *ddChecker
}

func (d *ddFile) run(t *testing.T, td *datadriven.TestData) (string, error) {
	switch td.Cmd {
	case "history":
		ops, err := parseOps(ddBase, td.Input)
		if err != nil {
			return "", err
		}
		d.history = ops
		return "", nil
	case "check":
		ops := d.history
		if td.Input != "" {
			var err error
			if ops, err = parseOps(ddBase, td.Input); err != nil {
				return "", err
			}
		}
		if len(ops) == 0 {
			return "", fmt.Errorf("no history")
		}
		var cuts []time.Duration
		opts := td.CmdArgs[:0:0]
		for _, a := range td.CmdArgs {
			if a.Key != "cuts" {
				opts = append(opts, a)
				continue
			}
			for _, v := range a.Vals {
				cut, err := parseOffset(v)
				if err != nil {
					return "", err
				}
				cuts = append(cuts, cut)
			}
		}
		c, err := d.newChecker(opts)
		if err != nil {
			return "", err
		}
		return c.checkHistory(t, ops, cuts), nil
	case "parse":
		ops, err := parseOps(ddBase, td.Input)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, op := range ops {
			fmt.Fprintf(&b, "%s\n", fmtOp(ddBase, op))
		}
		return b.String(), nil
	case "new":
		c, err := d.newChecker(td.CmdArgs)
		if err != nil {
			return "", err
		}
		d.c = c
		return "", nil
	case "evidence":
		return d.evidence(t, td)
	case "record", "check-until", "check-now", "metrics":
		if d.c == nil {
			return "", fmt.Errorf("%s: no checker (run new first)", td.Cmd)
		}
	default:
		return "", fmt.Errorf("unknown command %q", td.Cmd)
	}
	c := d.c
	switch td.Cmd {
	case "record":
		ops, err := parseOps(ddBase, td.Input)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, op := range ops {
			c.record(&b, op)
		}
		return b.String(), nil
	case "check-until":
		var cut string
		td.ScanArgs(t, "cut", &cut)
		off, err := parseOffset(cut)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		c.window(t, &b, func() { c.l.CheckUntil(ddBase.Add(off)) })
		return b.String(), nil
	case "check-now":
		var b strings.Builder
		c.window(t, &b, func() { c.l.CheckNow() })
		return b.String(), nil
	default: // metrics
		return c.metrics(t), nil
	}
}

// ddChecker is a checker on a fake clock at ddBase with what the output
// needs: its registry, the violation events, every op recorded.
type ddChecker struct {
	l        *Linearizability
	reg      *prometheus.Registry
	events   []map[string]any
	recorded []KVOp
	keys     map[string]bool
	// quiet: a violation names its evidence's op count instead of
	// listing the ops (the evidence command has listed them).
	quiet bool
}

func (d *ddFile) newChecker(args []datadriven.CmdArg) (*ddChecker, error) {
	c := &ddChecker{reg: prometheus.NewRegistry(), keys: map[string]bool{}}
	o := LinearizabilityOptions{
		Component:     "raft",
		InitialAbsent: true,
		EvidenceDir:   d.evidenceDir,
		Metrics:       c.reg,
		Event:         func(_ string, f map[string]any) { c.events = append(c.events, f) },
		Clock:         clockwork.NewFakeClockAt(ddBase),
	}
	for _, a := range args {
		if len(a.Vals) != 1 {
			return nil, fmt.Errorf("%s: want one value", a.Key)
		}
		v := a.Vals[0]
		var err error
		switch a.Key {
		case "initial":
			switch v {
			case "absent":
			case "any":
				o.InitialAbsent = false
			default:
				return nil, fmt.Errorf("initial=%s: want absent or any", v)
			}
		case "max-key-lag":
			o.MaxKeyLag, err = parseOffset(v)
		case "unknown-ttl":
			o.UnknownTTL, err = parseOffset(v)
		case "max-ops":
			_, err = fmt.Sscan(v, &o.MaxOps)
		default:
			return nil, fmt.Errorf("unknown option %s (want initial, max-key-lag, unknown-ttl, max-ops)", a.Key)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Key, err)
		}
	}
	l, err := NewLinearizability(o)
	if err != nil {
		return nil, err
	}
	c.l = l
	return c, nil
}

// checkHistory records ops in their order and checks them: before each
// cut, every op called by then is recorded (the checker's contract) and
// the history is checked up to the cut; then the rest is recorded and
// checked with CheckNow.
func (c *ddChecker) checkHistory(t *testing.T, ops []KVOp, cuts []time.Duration) string {
	var b strings.Builder
	done := make([]bool, len(ops))
	for _, off := range cuts {
		cut := ddBase.Add(off)
		for i, op := range ops {
			if !done[i] && !op.Call.After(cut) {
				c.record(&b, op)
				done[i] = true
			}
		}
		c.window(t, &b, func() { c.l.CheckUntil(cut) })
	}
	for i, op := range ops {
		if !done[i] {
			c.record(&b, op)
		}
	}
	c.window(t, &b, func() { c.l.CheckNow() })
	r := c.l.Results()
	verdict := ResultOK
	switch {
	case r.Illegal > 0:
		verdict = ResultIllegal
	case r.Unknown > 0:
		verdict = ResultUnknown
	case r.OK == 0:
		verdict = "nothing checked"
	}
	fmt.Fprintf(&b, "verdict: %s\n", verdict)
	return b.String()
}

// record records op and reports it when the checker drops it.
func (c *ddChecker) record(b *strings.Builder, op KVOp) {
	before := c.dropCounts()
	c.l.Record(op)
	c.recorded = append(c.recorded, op)
	c.keys[op.Key] = true
	after := c.dropCounts()
	for _, reason := range []string{DropBufferFull, DropLate, DropInvalid} {
		if after[reason] > before[reason] {
			fmt.Fprintf(b, "dropped (%s): %s\n", reason, fmtOp(ddBase, op))
		}
	}
}

func (c *ddChecker) dropCounts() map[string]float64 {
	m := map[string]float64{}
	for _, reason := range []string{DropBufferFull, DropLate, DropInvalid} {
		m[reason] = testutil.ToFloat64(c.l.dropped.WithLabelValues(reason))
	}
	return m
}

// window runs one check and prints what it decided: its verdicts, each
// violation with the ops of its evidence, each key's state, the totals.
func (c *ddChecker) window(t *testing.T, b *strings.Builder, check func()) {
	before, seen := c.l.Results(), len(c.events)
	check()
	r := c.l.Results()
	if r.Windows == before.Windows {
		return // nothing to check
	}
	c.l.mu.Lock()
	cut := c.l.lastCut
	c.l.mu.Unlock()
	fmt.Fprintf(b, "window to %s: ok=%d illegal=%d unknown=%d forced-cuts=%d\n", fmtOffset(cut.Sub(ddBase)),
		r.OK-before.OK, r.Illegal-before.Illegal, r.Unknown-before.Unknown, r.ForcedCuts-before.ForcedCuts)
	events := c.events[seen:]
	if uint64(len(events)) != r.Illegal-before.Illegal {
		t.Errorf("%d violation events for %d illegal key-windows", len(events), r.Illegal-before.Illegal)
	}
	for _, ev := range events {
		c.violation(t, b, ev)
	}
	if len(events) > 0 {
		last, v := events[len(events)-1], r.LastViolation
		if v == nil || v.Key != last["key"] || v.Evidence != last["evidence"] ||
			v.WindowStart.UTC().Format(time.RFC3339Nano) != last["window_start"] ||
			v.WindowEnd.UTC().Format(time.RFC3339Nano) != last["window_end"] {
			t.Errorf("last violation %+v, last event %v", v, last)
		}
	}
	c.keyStates(b)
	fmt.Fprintf(b, "totals: windows=%d ok=%d illegal=%d unknown=%d recorded=%d failed=%d checked=%d dropped=%d forced-cuts=%d buffered=%d max-buffered=%d\n",
		r.Windows, r.OK, r.Illegal, r.Unknown, r.Recorded, r.Failed, r.Checked, r.Dropped, r.ForcedCuts, r.Buffered, r.MaxBuffered)
}

// violation prints one illegal key-window and the ops of its evidence
// file, as recorded; an op of the evidence that is optional there though
// it was acknowledged was in flight at a cut.
func (c *ddChecker) violation(t *testing.T, b *strings.Builder, ev map[string]any) {
	key, _ := ev["key"].(string)
	if ev["component"] != "raft" || ev["invariant"] != checkerLinearizability {
		t.Errorf("event fields %v", ev)
	}
	span := func(field string) string {
		s, _ := ev[field].(string)
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Errorf("event %s %q: %v", field, s, err)
		}
		return fmtOffset(ts.Sub(ddBase))
	}
	fmt.Fprintf(b, "  illegal %s in window %s..%s:\n", key, span("window_start"), span("window_end"))
	path, _ := ev["evidence"].(string)
	ops, err := readEvidence(path)
	if err != nil {
		t.Errorf("evidence: %v", err)
		return
	}
	if c.quiet {
		fmt.Fprintf(b, "    (%s in its evidence)\n", plural(len(ops), "op"))
		return
	}
	used := make([]bool, len(c.recorded))
	for _, e := range ops {
		i := -1
		for j, op := range c.recorded {
			if !used[j] && op.Key == key && e.matches(ddBase, op) {
				i = j
				break
			}
		}
		if i < 0 {
			t.Errorf("evidence op %+v is not a recorded op", e)
			continue
		}
		used[i] = true
		note := ""
		if e.maybe && c.recorded[i].Outcome == components.OutcomeOK {
			note = "  # optional: in flight at a cut"
		}
		fmt.Fprintf(b, "    %s%s\n", fmtOp(ddBase, c.recorded[i]), note)
	}
}

// keyStates prints, per key, how far it has been checked and what it
// carries into its next window.
func (c *ddChecker) keyStates(b *strings.Builder) {
	l := c.l
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	held := map[string]int{}
	for _, op := range l.buf {
		held[op.Key]++
	}
	for _, key := range slices.Sorted(maps.Keys(c.keys)) {
		var parts []string
		if cut := l.cutOfLocked(key); cut.IsZero() {
			parts = append(parts, "not checked yet")
		} else {
			parts = append(parts, "checked to "+fmtOffset(cut.Sub(ddBase)))
		}
		parts = append(parts, "may hold "+l.stateOf(key).String())
		if n := held[key]; n > 0 {
			parts = append(parts, plural(n, "op")+" held")
		}
		for _, p := range l.pending[key] {
			w := fmtValue(p.op.Value)
			if p.op.Op == "cas" {
				w = fmtValue(p.op.Expect) + "->" + w
			}
			parts = append(parts, fmt.Sprintf("unknown %s %s may land until %s", p.op.Op, w, fmtOffset(p.expiry.Sub(ddBase))))
		}
		until := maxTime(l.taint[key], l.dropTaint[key])
		if !until.IsZero() {
			parts = append(parts, "left unchecked until "+fmtOffset(until.Sub(ddBase)))
		}
		fmt.Fprintf(b, "  %s: %s\n", fmtValue([]byte(key)), strings.Join(parts, ", "))
	}
}

// metrics prints the checker's non-zero series, without the constant
// component and checker labels.
func (c *ddChecker) metrics(t *testing.T) string {
	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v == 0 {
				continue
			}
			var labels []string
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "component" && lp.GetName() != "checker" {
					labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
				}
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			lines = append(lines, fmt.Sprintf("%s %g", name, v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// evidence re-checks the key-window of an evidence file a soak wrote, from
// the state the file says the window started from (older files carry none:
// then from any value), unless key= or init= say otherwise:
// evidence file=<path relative to testdata> [key=<key>] [init=any|absent|(v, ...)]
func (d *ddFile) evidence(t *testing.T, td *datadriven.TestData) (string, error) {
	var file string
	td.ScanArgs(t, "file", &file)
	path := filepath.Join(d.dir, file)
	carried, err := readCarried(path)
	if err != nil {
		return "", err
	}
	key, init := "k", topState(false)
	var pending []evidenceOp
	var carriedNote string
	if carried != nil {
		key = carried.Key
		if !carried.InitAny {
			if init, err = parseInit(carried.Init); err != nil {
				return "", fmt.Errorf("carried state: %w", err)
			}
		}
		for _, desc := range carried.Pending {
			op, err := parseDescription(desc)
			if err != nil {
				return "", fmt.Errorf("carried state: %w", err)
			}
			pending = append(pending, op)
		}
		carriedNote = fmt.Sprintf("carried into the window: %s, %s\n", init, plural(len(pending), "pending write"))
	}
	if td.HasArg("key") {
		td.ScanArgs(t, "key", &key)
	}
	if a, ok := td.Arg("init"); ok {
		if init, err = parseInit(a.Vals); err != nil {
			return "", err
		}
	}
	if err := checkEvidenceKey(path, key); err != nil {
		return "", err
	}
	eops, err := readEvidence(path)
	if err != nil {
		return "", err
	}
	// A write still pending from an earlier window may land at any moment
	// of this one: an unknown op called before the window, never returned.
	first, client := int64(0), 0
	for i, e := range eops {
		if i == 0 || e.call < first {
			first = e.call
		}
		client = max(client, e.client+1)
	}
	for i := range pending {
		pending[i].client, pending[i].call, pending[i].ret, pending[i].maybe = client+i, first-1, math.MaxInt64, true
	}
	eops = append(pending, eops...)
	var b strings.Builder
	fmt.Fprintf(&b, "evidence: key %s, %s (clients renumbered; ops optional in the window read as unknown)\n", fmtValue([]byte(key)), plural(len(eops), "op"))
	b.WriteString(carriedNote)
	ops := make([]KVOp, len(eops))
	for i, e := range eops {
		ops[i] = e.kvOp(ddBase, key)
		fmt.Fprintf(&b, "%s\n", fmtOp(ddBase, ops[i]))
	}
	fmt.Fprintf(&b, "re-check from %s:\n", init)
	c, err := d.newChecker(nil)
	if err != nil {
		return "", err
	}
	c.quiet = true
	c.l.checkMu.Lock()
	c.l.setState(key, init)
	c.l.checkMu.Unlock()
	b.WriteString(c.checkHistory(t, ops, nil))
	return b.String(), nil
}

// parseInit reads the set of values a key may hold: any, or a list of
// values and <absent>.
func parseInit(vals []string) (regState, error) {
	if len(vals) == 1 && vals[0] == "any" {
		return topState(false), nil
	}
	var s regState
	for _, v := range vals {
		enc := absentVal
		if v != "<absent>" {
			p, err := parseValue(v)
			if err != nil {
				return s, fmt.Errorf("init: %w", err)
			}
			enc = encPresent([]byte(p))
		}
		s = s.add(enc)
	}
	if len(s.vals) == 0 {
		return s, fmt.Errorf("init: want any, or values and <absent>")
	}
	return s, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
