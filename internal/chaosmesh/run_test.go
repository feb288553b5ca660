package chaosmesh

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/jonboulle/clockwork"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

const testNS = "soak-test"

// runConfig is a config for backend chaosmesh, each setting off its
// default so the test sees it reach the objects.
func runConfig() *config.Config {
	cfg := config.Default()
	cfg.Faults.Backend = "chaosmesh"
	cfg.Faults.ChaosMesh = config.ChaosMeshFaults{Namespace: testNS, Name: "run-1", Kubeconfig: "/etc/soakd/kubeconfig", CrashAction: CrashPodFailure}
	return cfg
}

func runObject(obj client.Object, name, run string) client.Object {
	obj.SetName(name)
	obj.SetNamespace(testNS)
	obj.SetLabels(map[string]string{LabelManagedBy: "soakd", LabelRun: run})
	return obj
}

// localKind is a local injector that records what it is asked to inject
// and revert; the runner calls it from its own goroutine.
type localKind struct {
	mu    sync.Mutex
	calls []string
}

func (l *localKind) Inject(ctx context.Context, target string, _ map[string]string) (faults.Revert, error) {
	f, _ := faults.InjectionOf(ctx)
	l.add("inject " + f.ID + " " + target)
	return func(context.Context) error { l.add("revert " + f.ID); return nil }, nil
}

func (l *localKind) add(s string) { l.mu.Lock(); l.calls = append(l.calls, s); l.mu.Unlock() }

func (l *localKind) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.calls, ", ")
}

// eventually polls cond until it holds, for the runner's goroutine to act.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRunBackend drives a real fault runner on a fake clock through the
// backend the daemon builds: at start it deletes what an earlier
// incarnation of the run left (and nothing of another run's), each fault
// becomes an object named after its id lasting the rest of its window, an
// object goes when its fault's time is up, the kinds Chaos Mesh has no
// counterpart for go to their local injectors, and stop deletes what is
// left of the run's.
func TestRunBackend(t *testing.T) {
	c := newFake(
		// The earlier incarnation's object for random-1, which the resumed
		// run re-injects.
		runObject(&v1alpha1.NetworkChaos{}, "soakd-run-1-random-1", "run-1"),
		runObject(&v1alpha1.PodChaos{}, "soakd-other-random-1", "other"),
	)
	var kubeconfig string
	fb := RunBackend(func(kc string, _ *slog.Logger) (client.Client, error) { kubeconfig = kc; return c, nil })
	local := &localKind{}
	kinds := faults.Kinds{}
	for _, k := range []string{"partition", "crash", "byzantine", "leak"} {
		kinds[k] = faults.Kind{Spec: faults.Spec{Name: k}, Injector: local}
	}
	var logs bytes.Buffer
	ctx := context.Background()
	wrapped, stop, err := fb(ctx, runConfig(), "20260102T150405Z-abcd1234", kinds, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if kubeconfig != "/etc/soakd/kubeconfig" {
		t.Errorf("client built for kubeconfig %q, want faults.chaosmesh.kubeconfig", kubeconfig)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: "soakd-run-1-random-1"}, &v1alpha1.NetworkChaos{}); !apierrors.IsNotFound(err) {
		t.Errorf("the run's leftover: %v, want it deleted at start", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: "soakd-other-random-1"}, &v1alpha1.PodChaos{}); err != nil {
		t.Errorf("another run's object: %v, want it kept", err)
	}
	if !strings.Contains(logs.String(), "leftovers_deleted=1") {
		t.Errorf("start did not log what it deleted:\n%s", logs.String())
	}

	clock := clockwork.NewFakeClock()
	var elapsed atomic.Int64
	plan := []faults.Planned{
		{ID: "random-1", At: 10 * time.Second, Duration: time.Minute, Kind: "partition", Target: "raft/node-2"},
		{ID: "random-2", At: 20 * time.Second, Duration: 30 * time.Second, Kind: "crash", Target: "raft/node-3"},
		{ID: "random-3", At: 25 * time.Second, Duration: 10 * time.Second, Kind: "byzantine", Target: "pbft/node-1"},
		{ID: "random-4", At: 25 * time.Second, Duration: 10 * time.Second, Kind: "leak", Target: "self"},
	}
	r, err := faults.NewRunner(faults.RunnerOptions{Plan: plan, Kinds: wrapped, Clock: clock,
		Elapsed: func() time.Duration { return time.Duration(elapsed.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Stop(ctx) }()
	at := func(d time.Duration) { elapsed.Store(int64(d)); clock.Advance(time.Second) }
	get := func(name string, obj client.Object) error {
		return c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: name}, obj)
	}

	at(10 * time.Second)
	nc := &v1alpha1.NetworkChaos{}
	eventually(t, "random-1's NetworkChaos", func() bool { return get("soakd-run-1-random-1", nc) == nil })
	if d := nc.Spec.Duration; d == nil || *d != "1m0s" {
		t.Errorf("random-1 lasts %v, want its whole minute", d)
	}
	if got := nc.Spec.Selector.Pods[testNS]; nc.Spec.Action != v1alpha1.PartitionAction || !slices.Equal(got, []string{"soakd-raft-2"}) {
		t.Errorf("random-1: %s on %v, want a partition of soakd-raft-2 in %s", nc.Spec.Action, got, testNS)
	}

	at(22 * time.Second) // random-2 starts 2 s late: it gets what is left of its window
	pc := &v1alpha1.PodChaos{}
	eventually(t, "random-2's PodChaos", func() bool { return get("soakd-run-1-random-2", pc) == nil })
	if d := pc.Spec.Duration; d == nil || *d != "28s" {
		t.Errorf("random-2 lasts %v, want the 28s left", d)
	}
	if pc.Spec.Action != v1alpha1.PodFailureAction || pc.Labels[LabelFaultID] != "random-2" || pc.Labels[LabelRun] != "run-1" {
		t.Errorf("random-2: action %s, labels %v; want faults.chaosmesh's crash_action and name", pc.Spec.Action, pc.Labels)
	}

	at(25 * time.Second)
	eventually(t, "the local faults", func() bool { return strings.Count(local.String(), "inject") == 2 })

	at(50 * time.Second) // random-2's time is up
	eventually(t, "random-2's deletion", func() bool { return apierrors.IsNotFound(get("soakd-run-1-random-2", pc)) })
	if err := get("soakd-run-1-random-1", nc); err != nil {
		t.Errorf("random-1 (until 70s): %v", err)
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := get("soakd-run-1-random-1", nc); !apierrors.IsNotFound(err) {
		t.Errorf("random-1 after the runner stopped: %v, want reverted", err)
	}
	local.mu.Lock()
	calls := slices.Sorted(slices.Values(local.calls)) // the runner reverts in map order
	local.mu.Unlock()
	if want := []string{"inject random-3 pbft/node-1", "inject random-4 self", "revert random-3", "revert random-4"}; !slices.Equal(calls, want) {
		t.Errorf("local injector: %q, want %q", calls, want)
	}
	var ncs v1alpha1.NetworkChaosList
	var pcs v1alpha1.PodChaosList
	var scs v1alpha1.StressChaosList
	for _, l := range []client.ObjectList{&ncs, &pcs, &scs} {
		if err := c.List(ctx, l, client.InNamespace(testNS)); err != nil {
			t.Fatal(err)
		}
	}
	if len(ncs.Items)+len(pcs.Items)+len(scs.Items) != 1 {
		t.Errorf("objects left: %d NetworkChaos, %d PodChaos, %d StressChaos; want only the other run's", len(ncs.Items), len(pcs.Items), len(scs.Items))
	}

	// A revert that kept failing left an object: stop deletes it.
	if err := c.Create(ctx, runObject(&v1alpha1.NetworkChaos{}, "soakd-run-1-random-9", "run-1")); err != nil {
		t.Fatal(err)
	}
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := get("soakd-run-1-random-9", &v1alpha1.NetworkChaos{}); !apierrors.IsNotFound(err) {
		t.Errorf("the run's object after stop: %v, want deleted", err)
	}
	if err := get("soakd-other-random-1", &v1alpha1.PodChaos{}); err != nil {
		t.Errorf("another run's object after stop: %v, want kept", err)
	}
}

// TestRunBackendErrors: a backend that cannot start says why in one line,
// naming the setting; without faults.chaosmesh.name, the run id names the
// run's objects.
func TestRunBackendErrors(t *testing.T) {
	ctx := context.Background()
	cfg := runConfig()
	cfg.Faults.ChaosMesh.Kubeconfig = filepath.Join(t.TempDir(), "nonesuch")
	_, _, err := RunBackend(NewClient)(ctx, cfg, "run", faults.Kinds{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "faults.chaosmesh.kubeconfig ("+cfg.Faults.ChaosMesh.Kubeconfig+"): ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing kubeconfig: got %q", err)
	}

	// No Chaos Mesh CRDs (or no RBAC to list them): every list fails.
	noCRDs := fake.NewClientBuilder().WithScheme(Scheme()).WithInterceptorFuncs(interceptor.Funcs{
		List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
			return errors.New("no matches for kind in version chaos-mesh.org/v1alpha1")
		}}).Build()
	_, _, err = RunBackend(func(string, *slog.Logger) (client.Client, error) { return noCRDs, nil })(ctx, runConfig(), "run", faults.Kinds{}, nil)
	if err == nil || strings.Contains(err.Error(), "\n") ||
		!strings.HasPrefix(err.Error(), "faults.chaosmesh: objects of run run-1 in namespace "+testNS+": cleanup: list") ||
		!strings.HasSuffix(err.Error(), "no matches for kind in version chaos-mesh.org/v1alpha1 (and 3 more)") {
		t.Errorf("no CRDs: got %q", err)
	}

	cfg = runConfig()
	cfg.Faults.ChaosMesh.Name = ""
	const runID = "20260102T150405Z-abcd1234"
	c := newFake(runObject(&v1alpha1.PodChaos{}, "leftover", labelValue(runID)))
	if _, _, err := RunBackend(func(string, *slog.Logger) (client.Client, error) { return c, nil })(ctx, cfg, runID, faults.Kinds{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: "leftover"}, &v1alpha1.PodChaos{}); !apierrors.IsNotFound(err) {
		t.Errorf("the run id's leftover: %v, want deleted", err)
	}
}

// TestConfigAgreesWithOptions: internal/config checks faults.chaosmesh
// without Kubernetes' code; what it accepts, Options accept, and a name it
// accepts labels the objects as written (Cleanup matches it exactly).
func TestConfigAgreesWithOptions(t *testing.T) {
	if got := slices.Sorted(slices.Values(config.ChaosMeshCrashActions)); !slices.Equal(got, []string{CrashPodFailure, CrashPodKill}) {
		t.Errorf("config's crash actions %v, want %s and %s", got, CrashPodKill, CrashPodFailure)
	}
	problem := func(set func(*config.ChaosMeshFaults), field string) bool {
		cfg := config.Default()
		set(&cfg.Faults.ChaosMesh)
		err := cfg.Validate()
		return err != nil && strings.Contains(err.Error(), "faults.chaosmesh."+field)
	}
	for _, a := range []string{CrashPodKill, CrashPodFailure, "container-kill"} {
		configOK := !problem(func(cm *config.ChaosMeshFaults) { cm.CrashAction = a }, "crash_action")
		if optsOK := (Options{CrashAction: a}).Check() == nil; configOK != optsOK {
			t.Errorf("crash action %q: config accepts it %v, Options %v", a, configOK, optsOK)
		}
	}
	for _, ns := range []string{"soakd", "a", "soak-2", "0x", strings.Repeat("a", 63), strings.Repeat("a", 64), "Soakd", "soak_d", "soak.d", "-soak", "soak-"} {
		configOK := !problem(func(cm *config.ChaosMeshFaults) { cm.Namespace = ns }, "namespace")
		if optsOK := (Options{Namespace: ns}).Check() == nil; configOK != optsOK {
			t.Errorf("namespace %q: config accepts it %v, Options %v", ns, configOK, optsOK)
		}
	}
	for _, n := range []struct {
		name string
		ok   bool
	}{{"default", true}, {"k8s", true}, {"run-1", true}, {strings.Repeat("n", 63), true},
		{"Run_1", false}, {"a/b", false}, {strings.Repeat("n", 64), false}} {
		if ok := !problem(func(cm *config.ChaosMeshFaults) { cm.Name = n.name }, "name"); ok != n.ok {
			t.Errorf("name %q: config accepts it %v, want %v", n.name, ok, n.ok)
			continue
		}
		if n.ok && (labelValue(n.name) != n.name || !strings.HasPrefix(ObjectName(n.name, "random-1"), "soakd-"+n.name+"-")) {
			t.Errorf("name %q: config accepts it, but it labels the objects %q", n.name, labelValue(n.name))
		}
	}
}
