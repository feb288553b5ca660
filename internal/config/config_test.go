package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func problemLines(t *testing.T, err error) []string {
	t.Helper()
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	return errs.Lines()
}

func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no good configs in testdata/good")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate after Load: %v", err)
			}
			roundTrip(t, cfg)
		})
	}
}

// roundTrip checks that cfg marshals to YAML that parses back equal, which is
// how `soakd plan` and the run state dir record a config.
func roundTrip(t *testing.T, cfg *Config) {
	t.Helper()
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("round trip changed the config:\n%s\ngot %+v\nwant %+v", out, back, cfg)
	}
}

func TestEmptyAndMinimalAreDefault(t *testing.T) {
	for _, in := range []string{"", "\n", "# just a comment\n", "{}", "---\n", "~", "---\n{}\n...\n"} {
		cfg, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if !reflect.DeepEqual(cfg, Default()) {
			t.Errorf("Parse(%q) is not Default()", in)
		}
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default() does not validate:\n%v", err)
	}
	p, err := Parse(DefaultYAML)
	if err != nil {
		t.Fatalf("Parse(DefaultYAML): %v", err)
	}
	if !reflect.DeepEqual(p, d) {
		t.Fatalf("Parse(DefaultYAML) != Default()")
	}
	roundTrip(t, d)

	// Spot-check the values DESIGN.md §3 promises.
	if d.Run.Duration.Std() != 72*time.Hour || d.Run.Seed != 1 || d.Run.Warmup.Std() != 10*time.Minute {
		t.Errorf("run = %+v", d.Run)
	}
	if d.Listen != "127.0.0.1:9477" || d.StateDir != "" {
		t.Errorf("listen = %q, state_dir = %q", d.Listen, d.StateDir)
	}
	if m := d.Components.Migration; m.GuestMemory.Bytes() != 256<<20 || m.DirtyRate.PerSecond() != 2<<20 || m.Streams != 4 || m.Compression != "none" {
		t.Errorf("migration = %+v", m)
	}
	if l := d.Load.Raft; l.Rate != 500 || l.Keys != 10000 || !reflect.DeepEqual(l.Mix, map[string]float64{"put": 0.45, "get": 0.45, "cas": 0.10}) {
		t.Errorf("load.raft = %+v", l)
	}
	if d.Faults.Random == nil || len(d.Faults.Random.Kinds) != 10 || len(d.Faults.Timeline) != 2 {
		t.Errorf("faults = %+v", d.Faults)
	}
	if got := d.LeakCheck.Thresholds["heap_live_bytes"].PerSecond(); got != float64(1<<20)/60 {
		t.Errorf("heap_live_bytes threshold = %v/s", got)
	}

	// Default hands out copies: changing one must not change the next.
	d.Load.Raft.Mix["put"] = 99
	d.Faults.Random.Kinds[0] = "meteor"
	d.Faults.Timeline[0].Params = map[string]string{"x": "y"}
	if e := Default(); e.Load.Raft.Mix["put"] != 0.45 || e.Faults.Random.Kinds[0] != "partition" || e.Faults.Timeline[0].Params != nil {
		t.Errorf("Default() shares state between calls")
	}
}

// TestDefaultYAMLWritesEveryKey holds default.yaml to "every key written out":
// a field added to types.go must get a default and a line there.
func TestDefaultYAMLWritesEveryKey(t *testing.T) {
	root, err := parseNode(DefaultYAML)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node, typ reflect.Type, path string)
	walk = func(n *yaml.Node, typ reflect.Type, path string) {
		n = resolveAlias(n)
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				walk(c, typ.Elem(), index(path, i))
			}
			return
		}
		if typ.Kind() != reflect.Struct || typ.Implements(unmarshalerType) {
			return
		}
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			keys[n.Content[i].Value] = n.Content[i+1]
		}
		for name, i := range fieldIndex(typ) {
			c, ok := keys[name]
			// A timeline entry's target and params are optional; the
			// default derives leakcheck's confidences from its budget.
			optional := typ == reflect.TypeFor[TimedFault]() && (name == "target" || name == "params") ||
				(typ == reflect.TypeFor[LeakCheck]() || typ == reflect.TypeFor[LeakWindow]()) && name == "confidence"
			if !ok && !optional {
				t.Errorf("default.yaml does not set %s", field(path, name))
				continue
			}
			if ok {
				walk(c, typ.Field(i).Type, field(path, name))
			}
		}
	}
	walk(root, reflect.TypeFor[Config](), "")
}

func TestOverlay(t *testing.T) {
	cfg, err := Parse([]byte(`
load:
  raft: {mix: {get: 1}}
components:
  raft: {nodes: 5}
leakcheck:
  thresholds: {threads: 2/min}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Maps replace the default map whole.
	if !reflect.DeepEqual(cfg.Load.Raft.Mix, map[string]float64{"get": 1}) {
		t.Errorf("mix = %v, want only get", cfg.Load.Raft.Mix)
	}
	if len(cfg.LeakCheck.Thresholds) != 1 {
		t.Errorf("thresholds = %v, want only threads", cfg.LeakCheck.Thresholds)
	}
	// Structs merge key by key: siblings keep their defaults.
	if !cfg.Components.Raft.Enabled || cfg.Components.Raft.Nodes != 5 || cfg.Load.Raft.Rate != 500 || cfg.Load.Raft.Keys != 10000 {
		t.Errorf("raft = %+v, load = %+v", cfg.Components.Raft, cfg.Load.Raft)
	}
}

func TestNullClears(t *testing.T) {
	cfg, err := Parse([]byte("faults:\n  random: ~\n  timeline:\n  blast_radius: {}\nrun:\nstate_dir:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Faults.Random != nil || cfg.Faults.Timeline != nil || cfg.Faults.BlastRadius != nil {
		t.Errorf("faults = %+v, want random, timeline and blast_radius cleared", cfg.Faults)
	}
	if cfg.Run != Default().Run {
		t.Errorf("an empty run section changed run: %+v", cfg.Run)
	}
}

func TestRandomOverlaysDefault(t *testing.T) {
	cfg, err := Parse([]byte("faults: {random: {max_concurrent: 1}}"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Faults.Random
	if r.MaxConcurrent != 1 || r.MeanInterval.Std() != 5*time.Minute || len(r.Kinds) != 10 {
		t.Errorf("random = %+v", r)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	cfg, err := Load("testdata/good/anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Load.PBFT; p.Rate != 100 || p.Keys != 1000 || p.Mix["put"] != 0.5 {
		t.Errorf("load.pbft = %+v", p)
	}
	tl := cfg.Faults.Timeline
	if len(tl) != 3 {
		t.Fatalf("timeline has %d entries", len(tl))
	}
	if tl[1].At.Std() != 2*time.Hour || tl[1].Kind != "crash" || tl[1].Target != "raft/follower" {
		t.Errorf("timeline[1] = %+v", tl[1])
	}
	// In a list of merged mappings the first wins; explicit keys beat both.
	if tl[2].Target != "raft/follower" || tl[2].Kind != "byzantine" || tl[2].At.Std() != 3*time.Hour {
		t.Errorf("timeline[2] = %+v", tl[2])
	}
}

func TestDecodeEdgeCases(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[1, 2]", "expected a mapping, got a list"},
		{"hello", `expected a mapping, got "hello"`},
		{"? [a]\n: 1\n", "mapping key must be a string, got a list"},
		{"run: {<<: 5}", `run: merge key << needs a mapping or a list of mappings, got "5"`},
		{"load: {raft: {rate: .nan}}", `load.raft.rate: cannot parse ".nan" as a number`},
		{"load: {raft: {rate: 1e999}}", `load.raft.rate: cannot parse "1e999" as a number`},
		{"components: {raft: {nodes: 99999999999999999999}}", `components.raft.nodes: cannot parse "99999999999999999999" as an integer: out of range`},
		{"run: {seed: [1]}", "run.seed: expected a non-negative integer, got a list"},
		{"listen: {a: 1}", "listen: expected a string, got a mapping"},
		{"run: {duration: {a: 1}}", "run.duration: expected a duration, got a mapping"},
		{"faults: {timeline: [5]}", `faults.timeline[0]: expected a mapping, got "5"`},
		{"components: {raft: {enabled: ~}}", "components.raft.enabled: missing value"},
		{"a: &x [*x]", "a: unknown field"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %q", tc.in, tc.want)
			continue
		}
		if got := problemLines(t, err); len(got) != 1 || got[0] != tc.want {
			t.Errorf("Parse(%q):\n got  %q\n want %q", tc.in, got, tc.want)
		}
	}
}

func TestBillionLaughs(t *testing.T) {
	doc := `
a: &a [{duration: 1m}, {duration: 1m}, {duration: 1m}, {duration: 1m}, {duration: 1m}, {duration: 1m}, {duration: 1m}, {duration: 1m}, {duration: 1m}]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
faults: {timeline: *a}
`
	// The walk only follows the Config type tree, so aliases that nest
	// deeper than the tree cannot multiply work; this must return at once.
	done := make(chan error, 1)
	go func() { _, err := Parse([]byte(doc)); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("want errors for the unknown keys")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Parse did not return")
	}

	// Wide aliases along the type tree multiply work; the node budget stops it.
	var b strings.Builder
	b.WriteString("x-fault: &p {kind: crash, params: {")
	for i := range 1000 {
		fmt.Fprintf(&b, "k%d: v, ", i)
	}
	b.WriteString("}}\nfaults:\n  timeline: [")
	b.WriteString(strings.Repeat("*p, ", 2000))
	b.WriteString("]\n")
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("want a document too large problem, got %v", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Load(missing) = %v, want one line naming the file", err)
	}
	var errs Errors
	if errors.As(err, &errs) {
		t.Errorf("a missing file is not a config problem: %#v", errs)
	}
	if _, err := Load("testdata"); err == nil || !strings.Contains(err.Error(), "testdata") {
		t.Errorf("Load(dir) = %v", err)
	}
}

func TestValidateCollectsAll(t *testing.T) {
	c := Default()
	c.Run.Duration = 0
	c.Load.Raft.Rate = 0
	c.Telemetry.TraceRatio = -1
	c.Faults.Timeline = nil
	err := c.Validate()
	got := problemLines(t, err)
	want := []string{"run.duration: must be > 0", "load.raft.rate: must be > 0", "telemetry.trace_ratio: must be in [0, 1]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	var nilErrs error = Default().Validate()
	if nilErrs != nil {
		t.Errorf("Validate on a good config returned non-nil %#v", nilErrs)
	}
}

func TestDisabledComponentsNotChecked(t *testing.T) {
	cfg, err := Parse([]byte(`
components:
  raft: {enabled: false, nodes: 0}
  migration: {enabled: false, streams: 0}
load:
  raft: {rate: 0, mix: {}}
  migration: {interval: 0s}
faults:
  timeline: []
  blast_radius: {raft: 5}
`))
	if err != nil {
		t.Fatalf("disabled components' settings were checked: %v", err)
	}
	if cfg.Components.Raft.Enabled {
		t.Error("raft enabled")
	}
}

func TestProblemsAreBounded(t *testing.T) {
	var b strings.Builder
	for i := range maxProblems + 500 {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	_, err := Parse([]byte(b.String()))
	lines := problemLines(t, err)
	if len(lines) != maxProblems+1 || lines[0] != "k0: unknown field" || lines[maxProblems] != "and 500 more problems" {
		t.Errorf("got %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

// blast_radius.pbft defaults to f, whatever the number of replicas; a
// value given stands.
func TestBlastRadiusDefaultsToF(t *testing.T) {
	for replicas, want := range map[int]int{4: 1, 7: 2, 10: 3} {
		cfg := Default()
		cfg.Components.PBFT.Replicas = replicas
		if got := cfg.BlastRadius()["pbft"]; got != want {
			t.Errorf("%d replicas: blast radius %d, want f = %d", replicas, got, want)
		}
	}
	cfg := Default()
	cfg.Faults.BlastRadius = map[string]int{"pbft": 0}
	if got := cfg.BlastRadius()["pbft"]; got != 0 {
		t.Errorf("a given blast radius was replaced: %d", got)
	}
}
