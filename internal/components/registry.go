package components

import (
	"fmt"
	"sort"
	"sync"

	"github.com/soakd/soakd/internal/config"
)

// Spec is what a component registers: its factory and what the run needs
// to know about it without naming it. Everything else the component
// offers (nodes to crash, targets, a KV history) it declares by the
// interfaces its Component implements.
type Spec struct {
	Name    string
	Factory Factory
	// Enabled reports whether the config turns the component on (nil:
	// always).
	Enabled func(*config.Config) bool
	// Load is the component's open-loop load, if it takes one (nil: none;
	// it drives itself).
	Load func(*config.Config) (config.RateLoad, bool)
	// Targets are the selectors its TargetResolver resolves that random
	// faults may aim at, by role, in the order the schedule lists them.
	Targets []Target
}

// Registry maps component names to their specs, in registration order (the
// order components are built and started). Component packages register
// from the binary's wiring (cmd/soakd), not from init, so tests can build a
// registry with exactly the components they need.
type Registry struct {
	mu    sync.RWMutex
	specs []Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{}
}

// Register adds a component that is always enabled and takes no load.
func (r *Registry) Register(name string, f Factory) error {
	return r.RegisterSpec(Spec{Name: name, Factory: f})
}

// RegisterSpec adds a component. A duplicate or empty name is a
// programming error and is reported rather than silently overwriting the
// first.
func (r *Registry) RegisterSpec(s Spec) error {
	if s.Name == "" || s.Factory == nil {
		return fmt.Errorf("components: register %q: empty name or nil factory", s.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.specs {
		if e.Name == s.Name {
			return fmt.Errorf("components: %q registered twice", s.Name)
		}
	}
	r.specs = append(r.specs, s)
	return nil
}

// Specs returns the registered specs in registration order.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Spec(nil), r.specs...)
}

// Spec returns the named component's spec.
func (r *Registry) Spec(name string) (Spec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.specs {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.specs))
	for _, s := range r.specs {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// Build constructs the named component.
func (r *Registry) Build(name string, deps Deps) (Component, error) {
	s, ok := r.Spec(name)
	f := s.Factory
	if !ok {
		return nil, fmt.Errorf("components: unknown component %q (known: %v)", name, r.Names())
	}
	c, err := f(deps)
	if err != nil {
		return nil, fmt.Errorf("components: build %s: %w", name, err)
	}
	return c, nil
}
