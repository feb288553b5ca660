package components

import (
	"fmt"
	"time"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/registry"
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
	// OpTimeout bounds one operation of its load (nil: DefaultOpTimeout);
	// a migration takes longer than a key-value write.
	OpTimeout func(*config.Config) time.Duration
	// Links is the profile every link between the component's nodes has
	// for the whole run (nil or false: the loopback as it is), put on
	// through the fault fabric beneath any fault.
	Links func(*config.Config) (LinkProfile, bool)
}

// LinkProfile shapes every link of a component for the whole run.
type LinkProfile struct {
	Bandwidth float64       // bytes/s each direction of each link (0: no cap)
	Delay     time.Duration // added to every round trip
}

// Registry maps component names to their specs, in registration order (the
// order components are built and started). Component packages register
// from the binary's wiring (cmd/soakd), not from init, so tests can build a
// registry with exactly the components they need.
type Registry struct {
	specs registry.Ordered[Spec]
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
	if s.Factory == nil {
		return fmt.Errorf("components: register %q: nil factory", s.Name)
	}
	if err := r.specs.Add(s.Name, s); err != nil {
		return fmt.Errorf("components: register: %w", err)
	}
	return nil
}

// Specs returns the registered specs in registration order.
func (r *Registry) Specs() []Spec { return r.specs.All() }

// Spec returns the named component's spec.
func (r *Registry) Spec(name string) (Spec, bool) { return r.specs.Get(name) }

// Names returns the registered names, sorted.
func (r *Registry) Names() []string { return r.specs.Names() }

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
