package chaosmesh

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// kubernetesModules are the module paths this package keeps to itself.
var kubernetesModules = []string{"k8s.io/", "sigs.k8s.io/", "github.com/chaos-mesh/"}

// TestOnlyChaosMeshImportsKubernetes: no package of internal/ but this
// one links Kubernetes or Chaos Mesh code, so the rest of soakd builds as
// fast as it did without them (cmd/soakd links them through this package,
// for soakd chaos render).
func TestOnlyChaosMeshImportsKubernetes(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	cmd := exec.Command(gotool, "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./internal/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const self = "github.com/soakd/soakd/internal/chaosmesh"
	checked := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == self {
			continue
		}
		checked++
		for _, dep := range f[1:] {
			if dep == self || slices.ContainsFunc(kubernetesModules, func(m string) bool { return strings.HasPrefix(dep, m) }) {
				t.Errorf("%s links %s: Kubernetes and Chaos Mesh code belongs in internal/chaosmesh", f[0], dep)
				break
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list named %d packages besides this one", checked)
	}
}
