package chaosmesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/go-logr/logr"
	"github.com/jonboulle/clockwork"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/soakd/soakd/internal/faults"
)

// Scheme holds the Chaos Mesh kinds, for a client.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err) // the generated registrations cannot fail
	}
	return s
}

// NewClient returns a client for the cluster of kubeconfig: a path, or ""
// for $KUBECONFIG, ~/.kube/config, or the pod's service account when soakd
// runs in the cluster. It asks the server nothing until it is used; the
// server rejects unknown fields (strict field validation). What
// controller-runtime logs (the API server's warnings) goes to logger (nil:
// nowhere); that logger is process-wide, and without one controller-runtime
// prints a stack trace on its first log line.
func NewClient(kubeconfig string, logger *slog.Logger) (client.Client, error) {
	if logger == nil {
		ctrllog.SetLogger(logr.Discard())
	} else {
		ctrllog.SetLogger(logr.FromSlogHandler(logger.With("backend", "chaosmesh").Handler()))
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme(), FieldOwner: "soakd", FieldValidation: "Strict"})
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// Injection is what the fault runner knows of the fault it injects.
type Injection = faults.Injection

// BackendOptions tune a Backend.
type BackendOptions struct {
	// FaultOf says which planned fault an Inject's context belongs to (nil:
	// faults.InjectionOf, the runner's). False: the object is named after
	// the kind and a counter and has no duration, so only its revert (or
	// Cleanup) ends it.
	FaultOf func(ctx context.Context) (Injection, bool)
	// Wait bounds how long Inject waits for Chaos Mesh to report the fault
	// injected (condition AllInjected), and a revert for the object to be
	// gone (Chaos Mesh recovers the pods before it lets go). 0: no waiting,
	// and the journal says the injection was not confirmed.
	Wait time.Duration
	// Poll is how often a wait reads the object (default 500ms).
	Poll   time.Duration
	Clock  clockwork.Clock
	Logger *slog.Logger
}

// Backend injects faults as Chaos Mesh objects through a controller-runtime
// client: Inject creates the fault's object, its revert deletes it. Faults
// Chaos Mesh has no counterpart for go to the kind's local injector.
type Backend struct {
	c   client.Client
	o   Options
	bo  BackendOptions
	log *slog.Logger

	mu  sync.Mutex
	seq int // names objects when FaultOf says nothing
}

// NewBackend returns a backend creating objects through c.
func NewBackend(c client.Client, o Options, bo BackendOptions) (*Backend, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if bo.FaultOf == nil {
		bo.FaultOf = faults.InjectionOf
	}
	if bo.Poll <= 0 {
		bo.Poll = 500 * time.Millisecond
	}
	if bo.Clock == nil {
		bo.Clock = clockwork.NewRealClock()
	}
	log := bo.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{c: c, o: o, bo: bo, log: log.With("backend", "chaosmesh")}, nil
}

// Kinds routes every kind through the backend, each with its own injector
// as the local fallback.
func (b *Backend) Kinds(kinds faults.Kinds) faults.Kinds {
	out := make(faults.Kinds, len(kinds))
	for name, k := range kinds {
		out[name] = faults.Kind{Spec: k.Spec, Injector: b.Injector(name, k.Injector)}
	}
	return out
}

// Injector returns kind's injector: a fault Chaos Mesh can express becomes
// an object; any other goes to local (nil: refused, saying why).
func (b *Backend) Injector(kind string, local faults.Injector) faults.Injector {
	return &injector{b: b, kind: kind, local: local}
}

type injector struct {
	b     *Backend
	kind  string
	local faults.Injector
}

// maxNames bounds the names Inject tries for one fault: an object an
// earlier incarnation left under the first is deleted, but Chaos Mesh holds
// it until it has recovered its pods.
const maxNames = 8

func (in *injector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	b := in.b
	if reason, local := LocalReason(in.kind, params); local {
		if in.local == nil {
			return nil, fmt.Errorf("%s stays local (%s), and this run has no local injector for it", in.kind, reason)
		}
		b.log.Info("fault kept local", "kind", in.kind, "target", target, "reason", reason)
		return in.local.Inject(ctx, target, params)
	}
	p := faults.Planned{Kind: in.kind, Target: target, Params: params}
	if f, ok := b.faultOf(ctx); ok {
		p.ID, p.At, p.Duration = f.ID, f.At, f.Remaining
	} else {
		b.mu.Lock()
		b.seq++
		p.ID = fmt.Sprintf("%s-%d", in.kind, b.seq)
		b.mu.Unlock()
	}
	obj, err := b.o.build(p)
	if err != nil {
		return nil, err
	}
	base := obj.GetName()
	for i := 1; ; i++ {
		err := b.c.Create(ctx, obj)
		if err == nil {
			break
		}
		if !apierrors.IsAlreadyExists(err) || i == maxNames {
			return nil, fmt.Errorf("create %s %s/%s: %w", kindOf(obj), obj.GetNamespace(), obj.GetName(), err)
		}
		if err := b.removeLeftover(ctx, obj); err != nil {
			return nil, err
		}
		obj.SetName(fmt.Sprintf("%s-%d", base, i+1))
		obj.SetResourceVersion("")
	}
	ref := fmt.Sprintf("%s %s/%s", kindOf(obj), obj.GetNamespace(), obj.GetName())
	b.log.Info("chaos mesh object created", "object", ref, "id", p.ID, "target", target)
	revert := b.revert(obj, ref)
	if b.bo.Wait <= 0 {
		faults.Verified(ctx, ref+" created; not waiting for Chaos Mesh to confirm the injection")
		return revert, nil
	}
	got, err := b.waitInjected(ctx, obj)
	if err != nil {
		rerr := revert(context.WithoutCancel(ctx))
		return nil, errors.Join(fmt.Errorf("%s: %w", ref, err), rerr)
	}
	faults.Verified(ctx, ref+": Chaos Mesh reports it injected into "+got)
	return revert, nil
}

func (b *Backend) faultOf(ctx context.Context) (Injection, bool) {
	f, ok := b.bo.FaultOf(ctx)
	return f, ok && f.ID != ""
}

// removeLeftover deletes the object that holds obj's name: one of soakd's,
// left by an incarnation killed before it could revert.
func (b *Backend) removeLeftover(ctx context.Context, obj client.Object) error {
	old := obj.DeepCopyObject().(client.Object)
	if err := b.c.Get(ctx, client.ObjectKeyFromObject(obj), old); err != nil {
		return client.IgnoreNotFound(err)
	}
	if old.GetLabels()[LabelManagedBy] != "soakd" {
		return fmt.Errorf("%s %s/%s exists and is not soakd's", kindOf(obj), obj.GetNamespace(), obj.GetName())
	}
	b.log.Warn("deleting a chaos mesh object an earlier incarnation left", "object", obj.GetName())
	return client.IgnoreNotFound(b.c.Delete(ctx, old))
}

// chaosStatus is what every Chaos Mesh kind reports.
type chaosStatus interface {
	GetStatus() *v1alpha1.ChaosStatus
}

// waitInjected polls obj until Chaos Mesh reports it injected, and says
// into which pods.
func (b *Backend) waitInjected(ctx context.Context, obj client.Object) (string, error) {
	deadline := b.bo.Clock.Now().Add(b.bo.Wait)
	cur := obj.DeepCopyObject().(client.Object)
	for {
		if err := b.c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
			return "", fmt.Errorf("reading it back: %w", err)
		}
		st := cur.(chaosStatus).GetStatus()
		if hasCondition(st, v1alpha1.ConditionAllInjected) {
			var pods []string
			for _, r := range st.Experiment.Records {
				if r.SelectorKey == "." { // not the peers of a network fault
					pods = append(pods, r.Id)
				}
			}
			slices.Sort(pods)
			return strings.Join(pods, ", "), nil
		}
		if !b.bo.Clock.Now().Before(deadline) {
			return "", fmt.Errorf("not reported injected by Chaos Mesh within %v (%s)", b.bo.Wait, conditions(st))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-b.bo.Clock.After(b.bo.Poll):
		}
	}
}

// revert deletes obj; with Wait it also waits for it to be gone, which
// Chaos Mesh allows once it has recovered the pods. Deleting an object
// already gone is success, so a retry is safe.
func (b *Backend) revert(obj client.Object, ref string) faults.Revert {
	return func(ctx context.Context) error {
		if err := b.c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", ref, err)
		}
		if b.bo.Wait <= 0 {
			return nil
		}
		deadline := b.bo.Clock.Now().Add(b.bo.Wait)
		cur := obj.DeepCopyObject().(client.Object)
		for {
			err := b.c.Get(ctx, client.ObjectKeyFromObject(obj), cur)
			switch {
			case apierrors.IsNotFound(err):
				b.log.Info("chaos mesh object deleted", "object", ref)
				return nil
			case err != nil:
				return fmt.Errorf("reading %s back: %w", ref, err)
			case !b.bo.Clock.Now().Before(deadline):
				return fmt.Errorf("%s still there %v after its deletion: Chaos Mesh has not recovered it (%s)", ref, b.bo.Wait, conditions(cur.(chaosStatus).GetStatus()))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-b.bo.Clock.After(b.bo.Poll):
			}
		}
	}
}

// Cleanup deletes the objects of this run (Options.Name) still in the
// namespace: those an incarnation killed before its reverts left behind.
// It returns how many it deleted.
func (b *Backend) Cleanup(ctx context.Context) (int, error) {
	if b.o.Name == "" {
		return 0, errors.New("cleanup: no run name to tell this run's objects from others'")
	}
	sel := client.MatchingLabels{LabelManagedBy: "soakd", LabelRun: labelValue(b.o.Name)}
	n := 0
	var errs []error
	for _, list := range []client.ObjectList{&v1alpha1.NetworkChaosList{}, &v1alpha1.PodChaosList{}, &v1alpha1.StressChaosList{}, &v1alpha1.IOChaosList{}} {
		if err := b.c.List(ctx, list, client.InNamespace(b.o.Namespace), sel); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: list %T: %w", list, err))
			continue
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return n, fmt.Errorf("cleanup: %w", err)
		}
		for _, item := range items {
			obj := item.(client.Object)
			if err := b.c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("cleanup: delete %s %s: %w", kindOf(obj), obj.GetName(), err))
				continue
			}
			n++
			b.log.Warn("deleted a chaos mesh object an earlier incarnation left", "object", obj.GetName())
		}
	}
	return n, errors.Join(errs...)
}

func hasCondition(st *v1alpha1.ChaosStatus, t v1alpha1.ChaosConditionType) bool {
	for _, c := range st.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func conditions(st *v1alpha1.ChaosStatus) string {
	if len(st.Conditions) == 0 {
		return "no conditions reported"
	}
	var parts []string
	for _, c := range st.Conditions {
		s := string(c.Type) + "=" + string(c.Status)
		if c.Reason != "" {
			s += " (" + c.Reason + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
