package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/registry"
)

// Revert undoes one injection. It must be idempotent: the runner retries it
// after a failure and calls it again on shutdown.
type Revert func(ctx context.Context) error

// Injector applies a fault of one kind to a resolved target and returns how
// to undo it.
type Injector interface {
	Inject(ctx context.Context, target string, params map[string]string) (Revert, error)
}

// Spec is everything soakd knows about one fault kind. A kind declares it
// in its own file; config validation, the random schedule, `soakd plan`
// and the runner read it from a Registry, so a kind that is not built into
// this soakd is not offered anywhere.
type Spec struct {
	Name string
	// Params are the parameters a fault of this kind takes; any other name
	// is an error.
	Params []Param
	// Check validates parameter values (names are checked against Params
	// first). Return ParamError for a problem with one parameter, so config
	// validation can name its field. nil: any values.
	Check func(params map[string]string) error
	// Roles are what a random fault of this kind may aim at, among the
	// targets the enabled components offer (components.Spec.Targets), and
	// Self adds soakd's own process (target "self").
	Roles []components.Role
	Self  bool
	// Draw draws a random fault's parameters. nil: the kind is never drawn
	// at random, and NotRandom says why (shown when a config asks for it).
	Draw      func(rng *rand.Rand) map[string]string
	NotRandom string
	// TakesNodesOut: its faults take nodes out of service and count against
	// faults.blast_radius (crash, partition, blackhole).
	TakesNodesOut bool
	// Disturbs names the leak signals (leakcheck.Signal*) a fault of this
	// kind moves on purpose while in force; the leak checker keeps their
	// samples out of its window until the fault settles.
	Disturbs []string
	// Bounds checks fixed parameter values against the run's hard limits
	// (faults.resource), for check-config; the injector applies the same
	// limits at injection, where values may depend on the machine. nil: no
	// limits.
	Bounds func(c *config.Config, params map[string]string) error
	// New builds the kind's injector for a run.
	New func(env Env) (Injector, error)
}

// Param is one parameter of a fault kind.
type Param struct {
	Name string
	Doc  string // one line, with the default if there is one
}

// Env is what a kind's injector may use: the run's built, enabled
// components, the network fabric their links go through, the clock, a
// logger, the run's config and its state dir.
type Env struct {
	Components []components.Component
	Fabric     *fabric.Fabric
	Clock      clockwork.Clock
	Logger     *slog.Logger
	// Config is the run's config (nil: the defaults).
	Config *config.Config
	// StateDir is the run's state dir ("": the kind keeps nothing on disk).
	StateDir string
	// SelfAddr is where soakd's own HTTP API listens ("": unknown).
	SelfAddr string
}

// ParamError is a problem with one parameter's value.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }

// BadParam returns a ParamError.
func BadParam(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks a fault's parameters: their names against Params, then
// their values with Check. Problems with several parameters are joined.
func (s Spec) Validate(params map[string]string) error {
	var unknown []string
	for k := range params {
		if !slices.ContainsFunc(s.Params, func(p Param) bool { return p.Name == k }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		known := make([]string, len(s.Params))
		for i, p := range s.Params {
			known[i] = p.Name
		}
		want := "none"
		if len(known) > 0 {
			want = strings.Join(known, ", ")
		}
		return fmt.Errorf("unknown parameter %s (known: %s)", strings.Join(unknown, ", "), want)
	}
	if s.Check == nil {
		return nil
	}
	return s.Check(params)
}

// ParamProblems splits a Validate error into per-parameter problems ("" for
// one that names no parameter).
func ParamProblems(err error) []ParamError {
	var out []ParamError
	var walk func(error)
	walk = func(err error) {
		var pe *ParamError
		switch j, ok := err.(interface{ Unwrap() []error }); {
		case ok:
			for _, e := range j.Unwrap() {
				walk(e)
			}
		case errors.As(err, &pe):
			out = append(out, *pe)
		default:
			out = append(out, ParamError{Msg: err.Error()})
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// Registry holds the fault kinds' specs, in registration order. Kinds
// register from the binary's wiring (internal/faults/builtin), not from
// init, so a test builds a registry with exactly the kinds it needs.
type Registry struct {
	specs registry.Ordered[Spec]
}

// NewRegistry returns a registry holding specs; see Register.
func NewRegistry(specs ...Spec) (*Registry, error) {
	r := &Registry{}
	for _, s := range specs {
		if err := r.Register(s); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a kind. A duplicate or empty name, a missing constructor
// or a drawable kind with no target is a programming error.
func (r *Registry) Register(s Spec) error {
	switch {
	case s.New == nil:
		return fmt.Errorf("faults: register %q: nil New", s.Name)
	case s.Draw != nil && len(s.Roles) == 0 && !s.Self:
		return fmt.Errorf("faults: register %q: Draw without Roles or Self", s.Name)
	case s.Draw == nil && s.NotRandom == "":
		return fmt.Errorf("faults: register %q: not drawable at random, and NotRandom does not say why", s.Name)
	}
	if err := r.specs.Add(s.Name, s); err != nil {
		return fmt.Errorf("faults: register: %w", err)
	}
	return nil
}

// Spec returns the named kind's spec.
func (r *Registry) Spec(name string) (Spec, bool) { return r.specs.Get(name) }

// Specs returns the specs in registration order.
func (r *Registry) Specs() []Spec { return r.specs.All() }

// Names lists the kinds, sorted.
func (r *Registry) Names() []string { return r.specs.Names() }

// Kind is a fault kind built for a run.
type Kind struct {
	Spec
	Injector
}

// Kinds are the kinds built for a run, by name.
type Kinds map[string]Kind

// Build constructs every kind's injector for a run.
func (r *Registry) Build(env Env) (Kinds, error) {
	if env.Clock == nil {
		env.Clock = clockwork.NewRealClock()
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.Config == nil {
		env.Config = config.Default()
	}
	out := Kinds{}
	for _, s := range r.Specs() {
		e := env
		e.Logger = env.Logger.With("fault", s.Name)
		inj, err := s.New(e)
		if err != nil {
			return nil, fmt.Errorf("faults: build %s: %w", s.Name, err)
		}
		out[s.Name] = Kind{Spec: s, Injector: inj}
	}
	return out, nil
}
