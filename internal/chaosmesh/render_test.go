package chaosmesh

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"go.uber.org/goleak"
	"sigs.k8s.io/controller-runtime/pkg/client"

	compbuiltin "github.com/soakd/soakd/internal/components/builtin"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	faultbuiltin "github.com/soakd/soakd/internal/faults/builtin"
)

var update = flag.Bool("update", false, "rewrite the golden objects in testdata/golden")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// defaultPlan is the plan of the embedded default config and its seed.
func defaultPlan(t *testing.T) (*config.Config, []faults.Planned) {
	t.Helper()
	cfg := config.Default()
	plan, err := faults.Plan(cfg, cfg.Run.Seed, faultbuiltin.Registry(), compbuiltin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) == 0 {
		t.Fatal("the default plan is empty")
	}
	return cfg, plan
}

func renderDefault(t *testing.T) (*Rendering, []faults.Planned) {
	t.Helper()
	cfg, plan := defaultPlan(t)
	r, err := Render(plan, OptionsFor(cfg, "", "default"))
	if err != nil {
		t.Fatalf("render the default plan: %v", err)
	}
	return r, plan
}

// TestDefaultPlanPassesChaosMeshValidation renders the default plan and
// runs every object through Chaos Mesh's own admission code again: its
// defaulting must change nothing (Render applied it) and the type's own
// Validate must accept it. Every fault is either an object or kept local,
// and each Chaos Mesh kind soakd maps to is exercised.
func TestDefaultPlanPassesChaosMeshValidation(t *testing.T) {
	r, plan := renderDefault(t)
	if got := len(r.Objects) + len(r.Local); got != len(plan) {
		t.Fatalf("%d objects + %d local = %d, plan has %d faults", len(r.Objects), len(r.Local), got, len(plan))
	}
	kinds := map[string]int{}
	for _, o := range r.Objects {
		kinds[kindOf(o.Object)]++
		before := o.Object.DeepCopyObject()
		if err := Validate(o.Object); err != nil {
			t.Errorf("%s: %v", o.Fault.ID, err)
			continue
		}
		if !reflect.DeepEqual(before, o.Object) {
			t.Errorf("%s: Chaos Mesh's defaulting changed a rendered object", o.Fault.ID)
		}
		// The method Chaos Mesh's webhook calls (ValidateCreate without its log line).
		if _, err := o.Object.(interface{ Validate() ([]string, error) }).Validate(); err != nil {
			t.Errorf("%s: %s.Validate: %v", o.Fault.ID, kindOf(o.Object), err)
		}
		if got := o.Object.GetLabels()[LabelFaultID]; got != o.Fault.ID {
			t.Errorf("%s: label %s = %q", o.Fault.ID, LabelFaultID, got)
		}
	}
	for _, k := range []string{v1alpha1.KindNetworkChaos, v1alpha1.KindPodChaos, v1alpha1.KindStressChaos, v1alpha1.KindIOChaos} {
		if kinds[k] == 0 {
			t.Errorf("the default plan renders no %s", k)
		}
	}
	for _, k := range r.Local {
		if k.Reason == "" {
			t.Errorf("%s (%s) kept local without a reason", k.Fault.ID, k.Fault.Kind)
		}
		if ChaosKind(k.Fault.Kind) != "" && k.Fault.Kind != "memory" {
			t.Errorf("%s (%s) kept local, but the kind maps to %s", k.Fault.ID, k.Fault.Kind, ChaosKind(k.Fault.Kind))
		}
	}
	t.Logf("%d faults: %d objects %v, %d local", len(plan), len(r.Objects), kinds, len(r.Local))
}

// TestGolden compares the first object of each Chaos Mesh kind and action
// the default plan renders with testdata/golden. Run with -update to
// rewrite them, then review the diff.
func TestGolden(t *testing.T) {
	r, _ := renderDefault(t)
	seen := map[string]bool{}
	var picked []Rendered
	for _, o := range r.Objects {
		k := kindOf(o.Object) + "/" + action(o.Object)
		if !seen[k] {
			seen[k] = true
			picked = append(picked, o)
		}
	}
	dir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range picked {
		got, err := Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, strings.ToLower(kindOf(o.Object))+"-"+action(o.Object)+".yaml")
		if *update {
			if err := os.WriteFile(name, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run with -update to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (run with -update and review the diff):\n%s", o.Fault.ID, name, got)
		}
	}
	if entries, err := os.ReadDir(dir); err == nil && !*update && len(entries) != len(picked) {
		t.Errorf("%s holds %d files, the default plan renders %d kinds and actions", dir, len(entries), len(picked))
	}
}

func action(obj client.Object) string {
	switch o := obj.(type) {
	case *v1alpha1.NetworkChaos:
		return string(o.Spec.Action)
	case *v1alpha1.PodChaos:
		return string(o.Spec.Action)
	case *v1alpha1.IOChaos:
		return string(o.Spec.Action)
	case *v1alpha1.StressChaos:
		if o.Spec.Stressors != nil && o.Spec.Stressors.CPUStressor != nil {
			return "cpu"
		}
		return "memory"
	}
	return "unknown"
}

// TestInvalidFieldRejectedWithPath breaks one field of a valid object at a
// time: Chaos Mesh's validation must reject it, naming the field by its
// JSON path.
func TestInvalidFieldRejectedWithPath(t *testing.T) {
	cfg := config.Default()
	opts, _ := OptionsFor(cfg, "", "t").withDefaults()
	build := func(kind, target string, params map[string]string) client.Object {
		t.Helper()
		obj, err := opts.build(faults.Planned{ID: "f", Duration: 60e9, Kind: kind, Target: target, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	for _, tc := range []struct {
		name  string
		obj   client.Object
		spoil func(client.Object)
		path  string
	}{
		{"delay latency abc", build("delay", "raft/leader", nil),
			func(o client.Object) { o.(*v1alpha1.NetworkChaos).Spec.Delay.Latency = "abc" }, "spec.delay.latency"},
		{"delay jitter", build("delay", "raft/leader", nil),
			func(o client.Object) { o.(*v1alpha1.NetworkChaos).Spec.Delay.Jitter = "5 parsecs" }, "spec.delay.jitter"},
		{"loss not a number", build("loss", "raft/follower", nil),
			func(o client.Object) { o.(*v1alpha1.NetworkChaos).Spec.Loss.Loss = "ten" }, "spec.loss.loss"},
		{"bandwidth rate unit", build("bandwidth", "raft/follower", nil),
			func(o client.Object) { o.(*v1alpha1.NetworkChaos).Spec.Bandwidth.Rate = "1MiB/s" }, "spec.bandwidth.rate"},
		{"negative percent", build("disk", "raft/leader", map[string]string{"mode": "io"}),
			func(o client.Object) { o.(*v1alpha1.IOChaos).Spec.Percent = -5 }, "spec.percent"},
		{"errno 0", build("disk", "raft/leader", nil),
			func(o client.Object) { o.(*v1alpha1.IOChaos).Spec.Errno = 0 }, "spec.errno"},
		{"memory size", build("memory", "self", nil),
			func(o client.Object) { o.(*v1alpha1.StressChaos).Spec.Stressors.MemoryStressor.Size = "lots" }, "spec.stressors.memory.size"},
		{"fixed mode value", build("partition", "raft/minority", nil),
			func(o client.Object) { o.(*v1alpha1.NetworkChaos).Spec.Value = "-1" }, "spec.value"},
		{"target value", build("partition", "raft/leader", nil),
			func(o client.Object) {
				nc := o.(*v1alpha1.NetworkChaos)
				nc.Spec.Target.Mode, nc.Spec.Target.Value = v1alpha1.FixedPercentMode, "150"
			}, "spec.target.value"},
		{"duration", build("crash", "raft/leader", nil),
			func(o client.Object) { d := "1 fortnight"; o.(*v1alpha1.PodChaos).Spec.Duration = &d }, "spec.duration"},
		{"name", build("cpu", "self", nil),
			func(o client.Object) { o.SetName("Not_A_Name") }, "metadata.name"},
		{"label value", build("cpu", "self", nil),
			func(o client.Object) { o.SetLabels(map[string]string{LabelFaultID: "no spaces allowed"}) }, "metadata.labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate(tc.obj); err != nil {
				t.Fatalf("valid object rejected: %v", err)
			}
			tc.spoil(tc.obj)
			err := Validate(tc.obj)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("got %v, want an InvalidError", err)
			}
			if len(inv.Errs) != 1 || inv.Errs[0].Field != tc.path {
				t.Fatalf("got %v, want one error at %s", err, tc.path)
			}
			if !strings.Contains(err.Error(), tc.path+": ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q: want one line naming %s", err, tc.path)
			}
		})
	}
}

func TestJSONPath(t *testing.T) {
	nc := reflect.TypeOf(&v1alpha1.NetworkChaos{})
	for _, tc := range []struct{ in, want string }{
		{"Spec.TcParameter.Delay.Latency", "spec.delay.latency"},
		{"Spec.PodSelector.Value", "spec.value"},
		{"Spec.Target.Selector.Namespaces[0]", "spec.target.selector.namespaces[0]"},
		{"Spec.PodSelector.Selector.GenericSelectorSpec.LabelSelectors[app]", "spec.selector.labelSelectors[app]"},
		{"ObjectMeta.Name", "metadata.name"},
		{"Spec.Nonesuch.Field", "spec.Nonesuch.Field"}, // unknown: kept as it is
	} {
		if got := jsonPath(nc, tc.in); got != tc.want {
			t.Errorf("jsonPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestObjectName(t *testing.T) {
	for _, tc := range []struct{ name, id, want string }{
		{"default", "random-12", "soakd-default-random-12"},
		{"", "timeline-0", "soakd-timeline-0"},
		{"My_Run.2024", "replay-7", "soakd-my-run-2024-replay-7"},
		{"--", "x", "soakd-x"},
	} {
		if got := ObjectName(tc.name, tc.id); got != tc.want {
			t.Errorf("ObjectName(%q, %q) = %q, want %q", tc.name, tc.id, got, tc.want)
		}
	}
	long := ObjectName(strings.Repeat("a", 300), "random-1")
	if len(long) > 253 {
		t.Errorf("name of %d characters", len(long))
	}
}

func TestOptionsRefused(t *testing.T) {
	_, plan := defaultPlan(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Namespace: "Bad NS"}, `namespace "Bad NS"`},
		{Options{CrashAction: "container-kill"}, `crash action "container-kill"`},
		{Options{Name: "!!"}, `name "!!"`},
		{Options{}, "component raft has no pods here"},
	} {
		_, err := Render(plan, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

func configDefault() *config.Config { return config.Default() }

func faultOf(kind, target string, params map[string]string) faults.Planned {
	return faults.Planned{ID: "f", At: 3600e9, Duration: 90e9, Kind: kind, Target: target, Params: params}
}
