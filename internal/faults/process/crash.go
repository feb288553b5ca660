package process

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"strings"
	"sync"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/faults"
)

// Spec is the "crash" fault kind: it stops a component's nodes as a
// power cut would, and its revert restarts them from their disk. A crashed
// node counts against faults.blast_radius.
func Spec() faults.Spec {
	return faults.Spec{
		Name:          "crash",
		Roles:         []components.Role{components.RoleLeader, components.RoleFollower},
		Draw:          func(*rand.Rand) map[string]string { return nil },
		TakesNodesOut: true,
		New: func(env faults.Env) (faults.Injector, error) {
			return &crash{nodes: components.NodesOf(env.Components)}, nil
		},
	}
}

// crash injects into the run's components with nodes.
type crash struct {
	nodes map[string]components.Nodes // by component name
}

// Inject crashes every node of a resolved target "component/node-a,node-b";
// revert restarts them from disk.
func (c *crash) Inject(ctx context.Context, target string, _ map[string]string) (faults.Revert, error) {
	comp, list, ok := strings.Cut(target, "/")
	n, known := c.nodes[comp]
	if !ok || !known || list == "" {
		return nil, fmt.Errorf("crash: target %q: want <component>/<node>[,<node>] of a component with nodes", target)
	}
	ids := strings.Split(list, ",")
	var crashed []string
	// A node restarted here starts its goroutines from the fault runner's:
	// they are the component's work, so they carry its stage label.
	asComponent := func(f func()) {
		pprof.Do(context.Background(), pprof.Labels("stage", "component/"+comp), func(context.Context) { f() })
	}
	for _, id := range ids {
		var err error
		asComponent(func() { err = n.Crash(id) })
		if err != nil {
			// Undo what was done: a half-applied fault is worse than none.
			for _, done := range crashed {
				asComponent(func() { _ = n.Restart(done) })
			}
			return nil, fmt.Errorf("crash %s/%s: %w", comp, id, err)
		}
		crashed = append(crashed, id)
	}
	faults.Verified(ctx, fmt.Sprintf("%s crashed (stopped, state left on disk)", strings.Join(crashed, ",")))
	var mu sync.Mutex
	pending := crashed
	return func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		var still []string
		for _, id := range pending {
			var err error
			asComponent(func() { err = n.Restart(id) })
			if err != nil {
				errs = append(errs, fmt.Errorf("restart %s/%s: %w", comp, id, err))
				still = append(still, id)
			}
		}
		pending = still // a retry restarts only what is still down
		return errors.Join(errs...)
	}, nil
}
