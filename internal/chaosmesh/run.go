package chaosmesh

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// startTimeout bounds the Cleanup before the run starts: the client has no
// timeout of its own, and a cluster that does not answer must fail the
// start, not hang it.
const startTimeout = time.Minute

// RunBackend is faults.backend chaosmesh for soakd run: a
// daemon.FaultBackend (its type spelled out, so this package need not link
// the daemon's). With a client from newClient (NewClient) for
// faults.chaosmesh.kubeconfig, it deletes the objects of the run's name an
// earlier incarnation left, before the runner starts and re-injects the
// faults still in their window, and routes the kinds through a Backend.
// Its stop deletes whatever of the run's is still there once the runner
// has reverted its faults (a revert that kept failing).
func RunBackend(newClient func(kubeconfig string, logger *slog.Logger) (client.Client, error)) func(ctx context.Context, cfg *config.Config, runID string, kinds faults.Kinds, log *slog.Logger) (faults.Kinds, func(context.Context) error, error) {
	return func(ctx context.Context, cfg *config.Config, runID string, kinds faults.Kinds, log *slog.Logger) (faults.Kinds, func(context.Context) error, error) {
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		cm := cfg.Faults.ChaosMesh
		name := cm.Name
		if name == "" {
			name = runID
		}
		o := OptionsFor(cfg, cm.Namespace, name)
		o.CrashAction = cm.CrashAction
		if err := o.Check(); err != nil {
			return nil, nil, fmt.Errorf("faults.chaosmesh: %w", err)
		}
		c, err := newClient(cm.Kubeconfig, log)
		if err != nil {
			where := cm.Kubeconfig
			if where == "" {
				where = "$KUBECONFIG, ~/.kube/config or the pod's service account"
			}
			return nil, nil, fmt.Errorf("faults.chaosmesh.kubeconfig (%s): %w", where, firstOf(err))
		}
		b, err := NewBackend(c, o, BackendOptions{FaultOf: faults.InjectionOf, Wait: cm.Wait.Std(), Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("faults.chaosmesh: %w", err)
		}
		cctx, cancel := context.WithTimeout(ctx, startTimeout)
		n, err := b.Cleanup(cctx)
		cancel()
		if err != nil {
			// The first call to the cluster: unreachable, no Chaos Mesh
			// CRDs, or no RBAC to list them.
			return nil, nil, fmt.Errorf("faults.chaosmesh: objects of run %s in namespace %s: %w", name, o.Namespace, firstOf(err))
		}
		log.Info("chaos mesh backend ready", "namespace", o.Namespace, "name", name, "leftovers_deleted", n, "wait", cm.Wait.Std())
		stop := func(ctx context.Context) error {
			n, err := b.Cleanup(ctx)
			if n > 0 {
				log.Warn("deleted chaos mesh objects the fault runner left", "count", n)
			}
			if err != nil {
				return fmt.Errorf("faults.chaosmesh: %w", firstOf(err))
			}
			return nil
		}
		return b.Kinds(kinds), stop, nil
	}
}

// firstOf keeps a joined error to one line: its first error, and how many
// more there were (Cleanup's lists usually fail alike).
func firstOf(err error) error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	switch errs := j.Unwrap(); len(errs) {
	case 0:
		return err
	case 1:
		return errs[0]
	default:
		return fmt.Errorf("%w (and %d more)", errs[0], len(errs)-1)
	}
}
