package components

import (
	"fmt"
	"sort"
	"sync"
)

// Registry maps component names to factories. Component packages register
// themselves from the binary's wiring (cmd/soakd), not from init, so tests can
// build a registry with exactly the components they need.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{factories: make(map[string]Factory)}
}

// Register adds a factory. A duplicate or empty name is a programming error
// and is reported rather than silently overwriting the first.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" || f == nil {
		return fmt.Errorf("components: register %q: empty name or nil factory", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		return fmt.Errorf("components: %q registered twice", name)
	}
	r.factories[name] = f
	return nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Build constructs the named component.
func (r *Registry) Build(name string, deps Deps) (Component, error) {
	r.mu.RLock()
	f, ok := r.factories[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("components: unknown component %q (known: %v)", name, r.Names())
	}
	c, err := f(deps)
	if err != nil {
		return nil, fmt.Errorf("components: build %s: %w", name, err)
	}
	return c, nil
}
