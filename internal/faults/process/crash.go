package process

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/faults"
)

// Crash is the "crash" fault kind.
type Crash struct {
	nodes map[string]components.Nodes // by component name
}

// New returns the kind for the given components' nodes.
func New(nodes map[string]components.Nodes) *Crash { return &Crash{nodes: nodes} }

func (*Crash) Name() string { return "crash" }

// TakesNodesOut: a crashed node counts against faults.blast_radius.
func (*Crash) TakesNodesOut() bool { return true }

// Validate accepts no parameters: a crash is a crash.
func (*Crash) Validate(p map[string]string) error {
	for k := range p {
		return fmt.Errorf("%s: unknown parameter (crash takes none)", k)
	}
	return nil
}

// Inject crashes every node of a resolved target "component/node-a,node-b";
// revert restarts them from disk.
func (c *Crash) Inject(_ context.Context, target string, _ map[string]string) (faults.Revert, error) {
	comp, list, ok := strings.Cut(target, "/")
	n, known := c.nodes[comp]
	if !ok || !known || list == "" {
		return nil, fmt.Errorf("crash: target %q: want <component>/<node>[,<node>] of a component with nodes", target)
	}
	ids := strings.Split(list, ",")
	var crashed []string
	for _, id := range ids {
		if err := n.Crash(id); err != nil {
			// Undo what was done: a half-applied fault is worse than none.
			for _, done := range crashed {
				_ = n.Restart(done)
			}
			return nil, fmt.Errorf("crash %s/%s: %w", comp, id, err)
		}
		crashed = append(crashed, id)
	}
	var mu sync.Mutex
	pending := crashed
	return func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		var still []string
		for _, id := range pending {
			if err := n.Restart(id); err != nil {
				errs = append(errs, fmt.Errorf("restart %s/%s: %w", comp, id, err))
				still = append(still, id)
			}
		}
		pending = still // a retry restarts only what is still down
		return errors.Join(errs...)
	}, nil
}
