package chaosmesh

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// The fake client stands in for the API server: none runs here.
func newFake(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(Scheme()).
		WithStatusSubresource(&v1alpha1.NetworkChaos{}, &v1alpha1.PodChaos{}, &v1alpha1.StressChaos{}, &v1alpha1.IOChaos{}).
		WithObjects(objs...).Build()
}

type faultKey struct{}

// withFault is the runner's side of BackendOptions.FaultOf.
func withFault(ctx context.Context, f Injection) context.Context {
	return context.WithValue(ctx, faultKey{}, f)
}

func faultOfCtx(ctx context.Context) (Injection, bool) {
	f, ok := ctx.Value(faultKey{}).(Injection)
	return f, ok
}

func newBackend(t *testing.T, c client.Client, bo BackendOptions) *Backend {
	t.Helper()
	if bo.FaultOf == nil {
		bo.FaultOf = faultOfCtx
	}
	b, err := NewBackend(c, OptionsFor(config.Default(), "", "run-1"), bo)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: DefaultNamespace, Name: name}
}

func TestBackendInjectAndRevert(t *testing.T) {
	c := newFake()
	b := newBackend(t, c, BackendOptions{})
	ctx := withFault(context.Background(), Injection{ID: "random-7", At: time.Hour, Remaining: 90 * time.Second})
	revert, err := b.Injector("delay", nil).Inject(ctx, "raft/node-2", map[string]string{"latency": "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	var nc v1alpha1.NetworkChaos
	if err := c.Get(ctx, key("soakd-run-1-random-7"), &nc); err != nil {
		t.Fatal(err)
	}
	if d := nc.Spec.Duration; d == nil || *d != "1m30s" {
		t.Errorf("duration %v, want the remaining 1m30s", d)
	}
	if got := nc.Spec.Selector.Pods[DefaultNamespace]; !slices.Equal(got, []string{"soakd-raft-2"}) {
		t.Errorf("pods %v, want soakd-raft-2", got)
	}
	if nc.Spec.Delay == nil || nc.Spec.Delay.Latency != "50ms" {
		t.Errorf("delay %+v", nc.Spec.Delay)
	}
	if nc.Labels[LabelRun] != "run-1" || nc.Labels[LabelFaultID] != "random-7" || nc.Annotations[AnnotationAt] != "1h0m0s" {
		t.Errorf("labels %v, annotations %v", nc.Labels, nc.Annotations)
	}
	for i := range 2 { // a revert is retried after a failure and again on stop
		if err := revert(ctx); err != nil {
			t.Fatalf("revert %d: %v", i+1, err)
		}
	}
	if err := c.Get(ctx, key("soakd-run-1-random-7"), &nc); !apierrors.IsNotFound(err) {
		t.Fatalf("after revert: %v, want not found", err)
	}
}

func TestBackendWithoutFaultOf(t *testing.T) {
	c := newFake()
	b := newBackend(t, c, BackendOptions{FaultOf: func(context.Context) (Injection, bool) { return Injection{}, false }})
	for i := range 2 {
		if _, err := b.Injector("cpu", nil).Inject(context.Background(), "self", nil); err != nil {
			t.Fatalf("inject %d: %v", i+1, err)
		}
	}
	var list v1alpha1.StressChaosList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range list.Items {
		names = append(names, sc.Name)
		if sc.Spec.Duration != nil {
			t.Errorf("%s: duration %s, want none (the revert ends it)", sc.Name, *sc.Spec.Duration)
		}
	}
	slices.Sort(names)
	if want := []string{"soakd-run-1-cpu-1", "soakd-run-1-cpu-2"}; !slices.Equal(names, want) {
		t.Errorf("objects %v, want %v", names, want)
	}
}

// recorder is a local injector.
type recorder struct{ calls []string }

func (r *recorder) Inject(_ context.Context, target string, params map[string]string) (faults.Revert, error) {
	r.calls = append(r.calls, target+" "+formatParams(params))
	return func(context.Context) error { return nil }, nil
}

func TestBackendKeepsLocal(t *testing.T) {
	c := newFake()
	b := newBackend(t, c, BackendOptions{})
	local := &recorder{}
	kinds := b.Kinds(faults.Kinds{
		"byzantine": {Spec: faults.Spec{Name: "byzantine"}, Injector: local},
		"memory":    {Spec: faults.Spec{Name: "memory"}, Injector: local},
	})
	ctx := withFault(context.Background(), Injection{ID: "random-1", Remaining: time.Minute})
	if _, err := kinds["byzantine"].Inject(ctx, "pbft/node-1", map[string]string{"behavior": "twin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kinds["memory"].Inject(ctx, "self", map[string]string{"mode": "gomemlimit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kinds["memory"].Inject(ctx, "self", map[string]string{"bytes": "5%"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pbft/node-1 behavior=twin", "self mode=gomemlimit"}; !slices.Equal(local.calls, want) {
		t.Errorf("local injections %q, want %q", local.calls, want)
	}
	var list v1alpha1.StressChaosList
	if err := c.List(ctx, &list); err != nil || len(list.Items) != 1 {
		t.Errorf("%d StressChaos (%v), want the one memory fault Chaos Mesh can express", len(list.Items), err)
	}
	_, err := b.Injector("byzantine", nil).Inject(ctx, "pbft/node-1", nil)
	if err == nil || !strings.Contains(err.Error(), "byzantine stays local") {
		t.Errorf("no local injector: got %v", err)
	}
}

// chaosController plays Chaos Mesh's part for NetworkChaos: it puts its
// finalizer on each new object, reports it injected into its selected pod,
// and lets a deleted one go. It runs until stop is closed.
func chaosController(t *testing.T, c client.Client, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx := context.Background()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var list v1alpha1.NetworkChaosList
			if err := c.List(ctx, &list); err != nil {
				t.Error(err)
				return
			}
			for i := range list.Items {
				nc := &list.Items[i]
				switch {
				case !nc.DeletionTimestamp.IsZero():
					nc.Finalizers = nil
					_ = c.Update(ctx, nc)
				case len(nc.Finalizers) == 0:
					nc.Finalizers = []string{"chaos-mesh/records"}
					_ = c.Update(ctx, nc)
				case !hasCondition(&nc.Status.ChaosStatus, v1alpha1.ConditionAllInjected):
					nc.Status.Conditions = []v1alpha1.ChaosCondition{{Type: v1alpha1.ConditionAllInjected, Status: corev1.ConditionTrue}}
					nc.Status.Experiment.Records = []*v1alpha1.Record{
						{Id: "soakd/soakd-raft-2", SelectorKey: ".", Phase: v1alpha1.Injected},
						{Id: "soakd/soakd-raft-1", SelectorKey: ".Target", Phase: v1alpha1.Injected}}
					_ = c.Status().Update(ctx, nc)
				}
			}
		}
	})
	return &wg
}

func TestBackendWaitsForChaosMesh(t *testing.T) {
	c := newFake()
	stop := make(chan struct{})
	wg := chaosController(t, c, stop)
	defer wg.Wait()
	defer close(stop)
	b := newBackend(t, c, BackendOptions{Wait: 10 * time.Second, Poll: 5 * time.Millisecond})
	ctx := withFault(context.Background(), Injection{ID: "random-3", Remaining: time.Minute})
	revert, err := b.Injector("partition", nil).Inject(ctx, "raft/node-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc := &v1alpha1.NetworkChaos{}
	if err := c.Get(ctx, key("soakd-run-1-random-3"), nc); err != nil {
		t.Fatal(err)
	}
	if pods, err := b.waitInjected(ctx, nc); err != nil || pods != "soakd/soakd-raft-2" {
		t.Errorf("injected into %q (%v), want the selected pod only", pods, err)
	}
	if err := revert(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, key("soakd-run-1-random-3"), nc); !apierrors.IsNotFound(err) {
		t.Fatalf("revert returned before Chaos Mesh let go: %v", err)
	}
}

func TestBackendWaitTimesOut(t *testing.T) {
	c := newFake()
	b := newBackend(t, c, BackendOptions{Wait: 30 * time.Millisecond, Poll: 5 * time.Millisecond})
	ctx := withFault(context.Background(), Injection{ID: "random-4", Remaining: time.Minute})
	_, err := b.Injector("loss", nil).Inject(ctx, "raft/follower", nil)
	if err == nil || !strings.Contains(err.Error(), "not reported injected by Chaos Mesh within 30ms (no conditions reported)") {
		t.Fatalf("got %v", err)
	}
	var list v1alpha1.NetworkChaosList
	if err := c.List(ctx, &list); err != nil || len(list.Items) != 0 {
		t.Errorf("a fault that never took left %d objects (%v)", len(list.Items), err)
	}

	// A revert Chaos Mesh holds up fails, so the runner retries it.
	nc := &v1alpha1.NetworkChaos{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: DefaultNamespace, Finalizers: []string{"chaos-mesh/records"}}}
	if err := c.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	revert := b.revert(nc, "NetworkChaos soakd/held")
	if err := revert(ctx); err == nil || !strings.Contains(err.Error(), "still there") {
		t.Fatalf("held revert: got %v", err)
	}
	if err := c.Get(ctx, key("held"), nc); err != nil {
		t.Fatal(err)
	}
	nc.Finalizers = nil
	if err := c.Update(ctx, nc); err != nil {
		t.Fatal(err)
	}
	if err := revert(ctx); err != nil {
		t.Fatalf("retried revert: %v", err)
	}
}

func TestBackendReplacesLeftover(t *testing.T) {
	left := &v1alpha1.NetworkChaos{ObjectMeta: metav1.ObjectMeta{Name: "soakd-run-1-random-7", Namespace: DefaultNamespace,
		Labels: map[string]string{LabelManagedBy: "soakd"}}}
	c := newFake(left)
	b := newBackend(t, c, BackendOptions{})
	ctx := withFault(context.Background(), Injection{ID: "random-7", Remaining: time.Minute})
	if _, err := b.Injector("delay", nil).Inject(ctx, "raft/leader", nil); err != nil {
		t.Fatal(err)
	}
	var list v1alpha1.NetworkChaosList
	if err := c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "soakd-run-1-random-7-2" {
		t.Errorf("objects %v, want only soakd-run-1-random-7-2", list.Items)
	}

	theirs := &v1alpha1.NetworkChaos{ObjectMeta: metav1.ObjectMeta{Name: "soakd-run-1-random-8", Namespace: DefaultNamespace}}
	c = newFake(theirs)
	b = newBackend(t, c, BackendOptions{})
	ctx = withFault(context.Background(), Injection{ID: "random-8", Remaining: time.Minute})
	if _, err := b.Injector("delay", nil).Inject(ctx, "raft/leader", nil); err == nil || !strings.Contains(err.Error(), "is not soakd's") {
		t.Errorf("someone else's object: got %v", err)
	}
}

func TestBackendCleanup(t *testing.T) {
	labels := func(run string) map[string]string { return map[string]string{LabelManagedBy: "soakd", LabelRun: run} }
	meta := func(name string, l map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: DefaultNamespace, Labels: l}
	}
	c := newFake(
		&v1alpha1.NetworkChaos{ObjectMeta: meta("a", labels("run-1"))},
		&v1alpha1.PodChaos{ObjectMeta: meta("b", labels("run-1"))},
		&v1alpha1.IOChaos{ObjectMeta: meta("c", labels("run-2"))},
		&v1alpha1.StressChaos{ObjectMeta: meta("d", nil)},
	)
	b := newBackend(t, c, BackendOptions{})
	n, err := b.Cleanup(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("cleanup deleted %d (%v), want run-1's 2", n, err)
	}
	for _, k := range []struct {
		name string
		obj  client.Object
	}{{"c", &v1alpha1.IOChaos{}}, {"d", &v1alpha1.StressChaos{}}} {
		if err := c.Get(context.Background(), key(k.name), k.obj); err != nil {
			t.Errorf("%s: %v, want it kept", k.name, err)
		}
	}
	unnamed, err := NewBackend(c, Options{Replicas: map[string]int{}}, BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unnamed.Cleanup(context.Background()); err == nil {
		t.Error("cleanup without a run name deleted by label alone")
	}
}

func TestNewClient(t *testing.T) {
	if _, err := NewClient(filepath.Join(t.TempDir(), "nonesuch"), nil); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing kubeconfig: got %v", err)
	}
	// A kubeconfig for a server that is not there: the client is built
	// without asking it anything, and the first call fails.
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.List(ctx, &v1alpha1.NetworkChaosList{}); err == nil {
		t.Error("listing on a server that is not there succeeded")
	}
}
