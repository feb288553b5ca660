package chaosmesh

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"sigs.k8s.io/yaml"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	faultbuiltin "github.com/soakd/soakd/internal/faults/builtin"
)

// TestMapping runs the scenarios of testdata/mapping: how each fault kind,
// target and parameter set renders. Run with -rewrite to regenerate the
// expected outputs, then review the diff.
//
//	render kind=K [target=T] [crash=pod-failure] [data-path=P]
//	k=v                    one parameter a line
//
// prints the object's kind, its notes and its spec; "local: reason" for a
// fault that stays local; "error: ..." for one that cannot be rendered.
// Components are the default config's (raft 3, pbft 4, migration 3).
func TestMapping(t *testing.T) {
	datadriven.RunTest(t, "testdata/mapping", func(t *testing.T, td *datadriven.TestData) string {
		if td.Cmd != "render" {
			t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
		}
		p := faults.Planned{ID: "f", At: 3600e9, Duration: 90e9}
		td.ScanArgs(t, "kind", &p.Kind)
		td.MaybeScanArgs(t, "target", &p.Target)
		opts := OptionsFor(config.Default(), "", "t")
		td.MaybeScanArgs(t, "crash", &opts.CrashAction)
		td.MaybeScanArgs(t, "data-path", &opts.DataPath)
		for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: parameter %q: want k=v", td.Pos, line)
			}
			if p.Params == nil {
				p.Params = map[string]string{}
			}
			p.Params[k] = v
		}
		if reason, local := LocalReason(p.Kind, p.Params); local {
			return "local: " + reason + "\n"
		}
		obj, err := Build(p, opts)
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		m, err := Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Spec any `json:"spec"`
		}
		if err := yaml.Unmarshal(m, &doc); err != nil {
			t.Fatal(err)
		}
		spec, err := yaml.Marshal(doc.Spec)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n", kindOf(obj))
		for _, n := range strings.Split(obj.GetAnnotations()[AnnotationNotes], "; ") {
			if n != "" {
				fmt.Fprintf(&b, "note: %s\n", n)
			}
		}
		b.Write(spec)
		return b.String()
	})
}

// TestEveryKindDecided: each kind built into soakd either maps to a Chaos
// Mesh kind or stays local with a reason, so a new kind cannot slip
// through unnoticed.
func TestEveryKindDecided(t *testing.T) {
	reg := faultbuiltin.Registry()
	for _, s := range reg.Specs() {
		reason, local := LocalReason(s.Name, nil)
		switch {
		case local && ChaosKind(s.Name) != "":
			t.Errorf("%s: both local (%s) and mapped to %s", s.Name, reason, ChaosKind(s.Name))
		case !local && ChaosKind(s.Name) == "":
			t.Errorf("%s: neither local nor mapped", s.Name)
		case local && strings.HasPrefix(reason, "no Chaos Mesh mapping"):
			t.Errorf("%s: built into soakd but not decided: map it or give it a reason in localKinds", s.Name)
		}
	}
	for k := range mappings {
		if _, ok := reg.Spec(k); !ok {
			t.Errorf("mapping for %s, which soakd does not have", k)
		}
	}
}
