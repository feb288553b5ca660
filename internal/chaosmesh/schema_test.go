package chaosmesh

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// crdSchemas reads the OpenAPI schemas of Chaos Mesh's CRDs in
// testdata/crds (copied from github.com/chaos-mesh/chaos-mesh
// config/crd/bases, see testdata/crds/SOURCE), by kind.
func crdSchemas(t *testing.T) map[string]*spec.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in testdata/crds: %v", err)
	}
	out := map[string]*spec.Schema{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Name != v1alpha1.SchemeGroupVersion.Version || v.Schema == nil {
				continue
			}
			raw, err := json.Marshal(v.Schema.OpenAPIV3Schema)
			if err != nil {
				t.Fatal(err)
			}
			s := &spec.Schema{}
			if err := json.Unmarshal(raw, s); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out[crd.Spec.Names.Kind] = s
		}
	}
	return out
}

// schemaErrors checks obj against its CRD's schema, as an API server
// would before Chaos Mesh's webhook sees it: enums, patterns, required
// fields, bounds.
func schemaErrors(t *testing.T, schemas map[string]*spec.Schema, obj client.Object) []string {
	t.Helper()
	s, ok := schemas[kindOf(obj)]
	if !ok {
		t.Fatalf("no CRD for %s", kindOf(obj))
	}
	b, err := Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := yaml.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range validate.NewSchemaValidator(s, nil, "", strfmt.Default).Validate(data).Errors {
		out = append(out, e.Error())
	}
	return out
}

// TestDefaultPlanPassesCRDSchema: every object of the default plan also
// fits the CRD schema the API server checks (the latency pattern, the
// action and mode enums, bandwidth's required limit and buffer), which
// Chaos Mesh's Go validation leaves to the server.
func TestDefaultPlanPassesCRDSchema(t *testing.T) {
	schemas := crdSchemas(t)
	r, _ := renderDefault(t)
	for _, o := range r.Objects {
		if errs := schemaErrors(t, schemas, o.Object); len(errs) > 0 {
			t.Errorf("%s: %s", o.Fault.ID, strings.Join(errs, "; "))
		}
	}
}

// TestMappingPassesCRDSchema covers the kinds and parameters the default
// plan does not draw (bandwidth, split, oneway, pod-failure, ...).
func TestMappingPassesCRDSchema(t *testing.T) {
	schemas := crdSchemas(t)
	for _, tc := range []struct {
		kind, target string
		params       map[string]string
		crash        string
	}{
		{"bandwidth", "pbft/backup", map[string]string{"rate": "3MiB/s"}, ""},
		{"bandwidth", "migration/host-1", nil, ""},
		{"partition", "raft/node-1,node-2", map[string]string{"mode": "oneway", "direction": "in"}, ""},
		{"partition", "raft/node-2", map[string]string{"mode": "split"}, ""},
		{"partition", "raft/majority", nil, ""},
		{"delay", "raft/leader", map[string]string{"latency": "1.5s"}, ""},
		{"loss", "raft/all", map[string]string{"probability": "0.125"}, ""},
		{"crash", "pbft/node-3", nil, CrashPodFailure},
		{"memory", "self", map[string]string{"bytes": "512MiB"}, ""},
		{"disk", "self", map[string]string{"mode": "balloon", "free": "2GiB"}, ""},
	} {
		opts := OptionsFor(configDefault(), "", "t")
		opts.CrashAction = tc.crash
		obj, err := Build(faultOf(tc.kind, tc.target, tc.params), opts)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.kind, tc.target, err)
		}
		if errs := schemaErrors(t, schemas, obj); len(errs) > 0 {
			t.Errorf("%s %s %v: %s", tc.kind, tc.target, tc.params, strings.Join(errs, "; "))
		}
	}
}

// TestCRDSchemaCatches makes sure the schema check can fail: a latency
// Go parses but the CRD's pattern refuses, an action not in the enum.
func TestCRDSchemaCatches(t *testing.T) {
	schemas := crdSchemas(t)
	obj, err := Build(faultOf("delay", "raft/leader", nil), OptionsFor(configDefault(), "", "t"))
	if err != nil {
		t.Fatal(err)
	}
	nc := obj.(*v1alpha1.NetworkChaos)
	nc.Spec.Delay.Latency = "1m30s"
	nc.Spec.Action = "teleport"
	errs := strings.Join(schemaErrors(t, schemas, nc), "; ")
	for _, want := range []string{"spec.delay.latency", "spec.action"} {
		if !strings.Contains(errs, want) {
			t.Errorf("schema errors %q do not name %s", errs, want)
		}
	}
}
