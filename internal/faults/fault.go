package faults

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Revert undoes one injection. It must be idempotent: the runner retries it
// after a failure and calls it again on shutdown.
type Revert func(ctx context.Context) error

// Kind is one kind of fault.
type Kind interface {
	Name() string
	// Validate checks parameters before anything is injected.
	Validate(params map[string]string) error
	// Inject applies the fault to target and returns how to undo it.
	Inject(ctx context.Context, target string, params map[string]string) (Revert, error)
}

// NodeDisruptor is implemented by a kind that takes nodes out of service
// (crash, partition, blackhole): its faults count against
// faults.blast_radius.
type NodeDisruptor interface {
	TakesNodesOut() bool
}

// Registry maps kind names to implementations.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]Kind{}} }

// Register adds a kind; a duplicate name is an error.
func (r *Registry) Register(k Kind) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[k.Name()]; dup {
		return fmt.Errorf("faults: kind %q registered twice", k.Name())
	}
	r.kinds[k.Name()] = k
	return nil
}

// Get returns the named kind.
func (r *Registry) Get(name string) (Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.kinds[name]
	return k, ok
}

// Names lists registered kinds, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
