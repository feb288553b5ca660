package chaosmesh

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// decodeStrict decodes one object's YAML into its Chaos Mesh type, failing
// on any field the type lacks.
func decodeStrict(t *testing.T, b []byte) client.Object {
	t.Helper()
	obj, _, err := serializer.NewCodecFactory(Scheme(), serializer.EnableStrict).UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
	return obj.(client.Object)
}

func TestWriteDir(t *testing.T) {
	r, plan := renderDefault(t)
	dir := t.TempDir()
	names, err := WriteDir(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(r.Objects) {
		t.Fatalf("%d files for %d objects", len(names), len(r.Objects))
	}
	// Every file decodes strictly back into the object rendered.
	for i, o := range r.Objects[:20] {
		b, err := os.ReadFile(filepath.Join(dir, names[i]))
		if err != nil {
			t.Fatal(err)
		}
		got := decodeStrict(t, b)
		want := o.Object.DeepCopyObject().(client.Object)
		want.GetObjectKind().SetGroupVersionKind(got.GetObjectKind().GroupVersionKind())
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s does not decode back into what was rendered", names[i])
		}
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, KustomizationFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || !slices.Equal(k.Resources, names) {
		t.Errorf("kustomization lists %d resources, kind %q", len(k.Resources), k.Kind)
	}
	local, err := os.ReadFile(filepath.Join(dir, LocalFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(local), "\n") - 1; n != len(r.Local) {
		t.Errorf("%s lists %d faults, %d stay local", LocalFile, n, len(r.Local))
	}

	// A second plan into the same directory replaces the first: the
	// files only the first listed go, a file of the user's stays.
	mine := filepath.Join(dir, "notes.yaml")
	if err := os.WriteFile(mine, []byte("mine: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := configDefault()
	small, err := Render(plan[:10], OptionsFor(cfg, "", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDir(dir, small); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(small.Objects) + 3; len(entries) != want {
		t.Errorf("%d files after the second plan, want %d objects + kustomization, %s and notes.yaml", len(entries), len(small.Objects), LocalFile)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the user's file: %v", err)
	}
}

func TestWriteDirRefusesForeignKustomization(t *testing.T) {
	r, _ := renderDefault(t)
	dir := t.TempDir()
	theirs := []byte("resources: [app.yaml]\n")
	if err := os.WriteFile(filepath.Join(dir, KustomizationFile), theirs, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := WriteDir(dir, r)
	if err == nil || !strings.Contains(err.Error(), "a kustomization soakd did not write") {
		t.Fatalf("got %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, KustomizationFile)); !bytes.Equal(got, theirs) {
		t.Error("the user's kustomization was changed")
	}
}

func TestWriteYAML(t *testing.T) {
	r, _ := renderDefault(t)
	var buf bytes.Buffer
	if err := WriteYAML(&buf, &Rendering{Objects: r.Objects[:5]}); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimPrefix(buf.String(), Generated), "---\n")[1:]
	if len(docs) != 5 {
		t.Fatalf("%d documents, want 5", len(docs))
	}
	for i, d := range docs {
		if got := decodeStrict(t, []byte(d)); got.GetName() != r.Objects[i].Object.GetName() {
			t.Errorf("document %d is %s, want %s", i, got.GetName(), r.Objects[i].Object.GetName())
		}
		if strings.Contains(d, "status:") || strings.Contains(d, "creationTimestamp") {
			t.Errorf("document %d carries status or an empty timestamp:\n%s", i, d)
		}
	}
}

// TestWriteDirKustomize builds the written directory with kubectl's
// kustomize, as kubectl apply -k would, and decodes every object strictly.
func TestWriteDirKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not in PATH")
	}
	r, _ := renderDefault(t)
	dir := t.TempDir()
	if _, err := WriteDir(dir, r); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	docs := strings.Split(string(out), "\n---\n")
	if len(docs) != len(r.Objects) {
		t.Fatalf("kustomize built %d objects, %d were written", len(docs), len(r.Objects))
	}
	names := map[string]bool{}
	for _, d := range docs {
		names[decodeStrict(t, []byte(d)).GetName()] = true
	}
	for _, o := range r.Objects {
		if !names[o.Object.GetName()] {
			t.Errorf("kustomize lost %s", o.Object.GetName())
		}
	}
}
