package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// linkKinds are the link fault kinds, one file each.
var linkKinds = []*linkKind{partitionKind, delayKind, bandwidthKind, blackholeKind, resetKind, lossKind}

// Specs returns the link fault kinds' specs.
func Specs() []faults.Spec {
	out := make([]faults.Spec, len(linkKinds))
	for i, lk := range linkKinds {
		out[i] = lk.spec()
	}
	return out
}

// Resolver turns a fault target ("raft/node-2", "raft/leader",
// "raft/minority") into fabric node names at injection time: nodes are the
// target, rest the target's peers (the other side of a split). Names are
// those the components' Dialer sees (qualified when DialerFor is used).
type Resolver func(target string) (nodes []string, rest []string, err error)

// FromComponents is the Resolver for the fault runner: the runner hands a
// kind the target it resolved ("raft/node-1,node-3"), and an unresolved one
// ("raft/leader") works too. Each comma-separated part is resolved by the
// component's TargetResolver (node ids resolve to themselves); rest is the
// component's other nodes ("all" minus nodes). With qualify, names become
// component/node, matching a component dialling through DialerFor.
func FromComponents(resolvers map[string]components.TargetResolver, qualify bool) Resolver {
	return func(target string) ([]string, []string, error) {
		comp, sel, ok := strings.Cut(target, "/")
		res, known := resolvers[comp]
		if !ok || !known || sel == "" {
			return nil, nil, fmt.Errorf("target %q names no component with nodes", target)
		}
		var nodes []string
		for _, part := range strings.Split(sel, ",") {
			got, err := res.Resolve(strings.TrimSpace(part), 0)
			if err != nil {
				return nil, nil, err
			}
			for _, n := range got {
				if !slices.Contains(nodes, n) {
					nodes = append(nodes, n)
				}
			}
		}
		all, err := res.Resolve("all", 0)
		if err != nil {
			return nil, nil, err
		}
		var rest []string
		for _, n := range all {
			if !slices.Contains(nodes, n) {
				rest = append(rest, n)
			}
		}
		if qualify {
			for i := range nodes {
				nodes[i] = comp + "/" + nodes[i]
			}
			for i := range rest {
				rest[i] = comp + "/" + rest[i]
			}
		}
		return nodes, rest, nil
	}
}

const (
	// verifyCut is how long a verification probe waits to see a cut link
	// refuse it or a blackholed link swallow it.
	verifyCut = 300 * time.Millisecond
	// verifySlack is the extra time a verification probe allows.
	verifySlack = time.Second
)

// plan is a validated parameter set; each kind fills its own fields.
type plan struct {
	mode, direction string // partition
	latency, jitter time.Duration
	rate            float64
	probability     float64
}

// linkKind is what one link fault kind supplies to the shared flow.
type linkKind struct {
	name  string
	parse func(map[string]string) (plan, error)
	// selection picks the links to fault and the link to probe; nil
	// isolates the target's nodes and probes their first link.
	selection func(p plan, nodes, rest []string) (fabric.Selector, fabric.Link, error)
	apply     func(f *fabric.Fabric, sel fabric.Selector, p plan) (func(context.Context) error, error)
	// verify probes l with the fault in force and says what it measured;
	// nil: the effect is statistical and not verified at run time.
	verify func(ctx context.Context, f *fabric.Fabric, p plan, l fabric.Link) (string, error)
	// selfMasking: the kind verifies itself even if another fault on the
	// link already stops traffic (partition: the probe must not connect).
	selfMasking bool
	// facts are the rest of its spec: parameters, roles, random draw,
	// blast radius.
	facts faults.Spec
}

// spec is the link kind's fault spec.
func (lk *linkKind) spec() faults.Spec {
	s := lk.facts
	s.Name = lk.name
	s.Check = func(p map[string]string) error { _, err := lk.parse(p); return err }
	s.New = func(env faults.Env) (faults.Injector, error) {
		if env.Fabric == nil {
			return nil, errors.New("no network fabric")
		}
		return &injector{lk: lk, f: env.Fabric, log: env.Logger, external: externalLinks(env.Components),
			resolve: FromComponents(components.Resolvers(env.Components), true)}, nil
	}
	return s
}

// injector is a link kind bound to a run's fabric.
type injector struct {
	lk      *linkKind
	f       *fabric.Fabric
	log     *slog.Logger
	resolve Resolver
	// external says, by component, why its links are not the fabric's.
	external map[string]string
}

// externalLinks maps each component whose links do not run through the
// fabric to the reason (components.ExternalLinks).
func externalLinks(comps []components.Component) map[string]string {
	out := map[string]string{}
	for _, c := range comps {
		if e, ok := c.(components.ExternalLinks); ok {
			if why := e.ExternalLinks(); why != "" {
				out[c.Name()] = why
			}
		}
	}
	return out
}

func (in *injector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	lk := in.lk
	p, err := lk.parse(params)
	if err != nil {
		return nil, err
	}
	nodes, rest, err := in.resolve(target)
	if err != nil {
		return nil, fmt.Errorf("%s: target %q: %w", lk.name, target, err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: target %q resolved to no nodes", lk.name, target)
	}
	for _, n := range append(slices.Clone(nodes), rest...) {
		comp, _, _ := strings.Cut(n, "/")
		if why, ok := in.external[comp]; ok {
			return nil, fmt.Errorf("%s: target %q: %s", lk.name, target, why)
		}
	}
	sel, probe, err := isolate(p, nodes, rest)
	if lk.selection != nil {
		sel, probe, err = lk.selection(p, nodes, rest)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: target %q: %w", lk.name, target, err)
	}
	revert, err := lk.apply(in.f, sel, p)
	if err != nil {
		return nil, err
	}
	measured, verr := in.verify(ctx, p, probe)
	if verr != nil {
		rerr := revert(ctx)
		return nil, errors.Join(fmt.Errorf("%s on %s: injected but not in effect: %w", lk.name, sel, verr), rerr)
	}
	faults.Verified(ctx, measured)
	in.log.Info("network fault verified", "kind", lk.name, "target", target, "nodes", nodes,
		"links", sel.String(), "probe", probe.String(), "verified", measured)
	return revert, nil
}

// verify checks the fault on l. An effect another fault masks on l (a cut,
// blackhole, loss or reset from an overlapping injection) leaves the check
// to that fault.
func (in *injector) verify(ctx context.Context, p plan, l fabric.Link) (string, error) {
	e := in.f.InForce(l)
	switch {
	case in.lk.verify == nil:
		return "not verified at run time (statistical; see tests)", nil
	case !in.lk.selfMasking && (e.Blackhole || e.Reset || e.Lossy || e.Cut):
		return "not verified: another fault on the link masks it", nil
	}
	return in.lk.verify(ctx, in.f, p, l)
}

// ruleOf applies a rule that takes no parameters, such as
// (*fabric.Fabric).Cut.
func ruleOf(rule func(*fabric.Fabric, fabric.Selector) (func(context.Context) error, error)) func(*fabric.Fabric, fabric.Selector, plan) (func(context.Context) error, error) {
	return func(f *fabric.Fabric, sel fabric.Selector, _ plan) (func(context.Context) error, error) {
		return rule(f, sel)
	}
}

// probe sends n bytes over l and waits at most wait for their echo.
func probe(ctx context.Context, f *fabric.Fabric, l fabric.Link, n int, wait time.Duration) (time.Duration, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return f.Probe(pctx, l, n)
}

// isolate faults every link to or from the target's nodes.
func isolate(_ plan, nodes, rest []string) (fabric.Selector, fabric.Link, error) {
	other := "soakd-probe"
	if len(rest) > 0 {
		other = rest[0]
	}
	return fabric.Isolate(nodes...), fabric.Link{From: nodes[0], To: other}, nil
}

// noParams parses a kind that takes none.
func noParams(map[string]string) (plan, error) { return plan{}, nil }

// ParseProbability reads "0.1" or "10%" as a probability in [0, 1].
func ParseProbability(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if strings.HasSuffix(t, "%") {
		t, scale = strings.TrimSpace(strings.TrimSuffix(t, "%")), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q (want e.g. 0.1 or 10%%)", s)
	}
	v /= scale
	if !(v >= 0 && v <= 1) {
		return 0, fmt.Errorf("%q is not in [0, 1] (or 0%%..100%%)", s)
	}
	return v, nil
}
