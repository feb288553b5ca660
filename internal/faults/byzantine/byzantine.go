// Package byzantine is the "byzantine" fault kind (Spec): a replica of a
// Byzantine-fault-tolerant component (PBFT) deviates from the protocol on
// the wire, with one of the seeded behaviours of package
// internal/components/pbft/byzantine (equivocate, mutate, forge, replay,
// silent, lie-view-change, twin: a second copy with the same keys), until
// the fault is reverted. A Byzantine
// replica counts against faults.blast_radius, which for pbft is at most f
// unless faults.allow_beyond_f is set.
package byzantine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/soakd/soakd/internal/components"
	behavior "github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/faults"
)

// Byzantine is implemented by a component whose replicas can be made to
// misbehave: SetBehavior puts b on node's sends (nil: correct again).
type Byzantine interface {
	SetBehavior(node string, b behavior.Behavior) error
	NodeIDs() []string
}

// verifyWithin is how long Inject waits to see the behaviour act on a
// message the replica sends.
const verifyWithin = 2 * time.Second

// behaviourParams are the behaviours' own parameters, passed through.
var behaviourParams = []faults.Param{
	{Name: "kinds", Doc: "mutate, silent: message kinds to act on, e.g. prepare,commit (default: all)"},
	{Name: "share", Doc: "forge: share of messages sent forged (default 100%)"},
	{Name: "rate", Doc: "replay: share of sends that also replay an old message (default 0.2)"},
	{Name: "mode", Doc: "lie-view-change: stale or forge (default forge)"},
}

// Spec is the "byzantine" fault kind.
func Spec() faults.Spec {
	return faults.Spec{
		Name: "byzantine",
		Params: append([]faults.Param{
			{Name: "behavior", Doc: "equivocate, mutate, forge, replay, silent, lie-view-change or twin (default: equivocate)"},
			{Name: "seed", Doc: "the behaviour's seed (default: from the target)"}}, behaviourParams...),
		Check:         check,
		Roles:         []components.Role{components.RoleByzantine},
		TakesNodesOut: true,
		Draw: func(rng *rand.Rand) map[string]string {
			names := drawable()
			return map[string]string{"behavior": names[rng.IntN(len(names))], "seed": strconv.FormatUint(rng.Uint64(), 10)}
		},
		New: func(env faults.Env) (faults.Injector, error) {
			in := &injector{byz: map[string]Byzantine{}, log: env.Logger}
			if in.log == nil {
				in.log = slog.New(slog.DiscardHandler)
			}
			for _, c := range env.Components {
				if b, ok := c.(Byzantine); ok {
					in.byz[c.Name()] = b
				}
			}
			return in, nil
		},
	}
}

// drawable are the behaviours a random fault may draw: all of them.
func drawable() []string { return behavior.Names() }

func split(params map[string]string) (name string, rest map[string]string) {
	rest = map[string]string{}
	for k, v := range params {
		if k != "behavior" && k != "seed" {
			rest[k] = v
		}
	}
	return params["behavior"], rest
}

func check(params map[string]string) error {
	name, rest := split(params)
	if name == "" {
		name = drawable()[0]
	}
	if err := behavior.Validate(name, rest); err != nil {
		return faults.BadParam("behavior", "%v", err)
	}
	if s, ok := params["seed"]; ok {
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return faults.BadParam("seed", "must be an unsigned integer, got %q", s)
		}
	}
	return nil
}

type injector struct {
	byz map[string]Byzantine
	log *slog.Logger
}

// ActedCounter is a Byzantine component whose replicas run the behaviour
// in another process (a rebuilt copy, which the counting wrapper does not
// see): BehaviorActed is the messages node's behaviour in force acted on,
// false when the node runs in this process.
type ActedCounter interface {
	BehaviorActed(node string) (int64, bool)
}

// counting counts the messages a behaviour saw, to verify it acts.
type counting struct {
	behavior.Behavior
	seen atomic.Int64
}

func (c *counting) Outgoing(o behavior.Out) []behavior.Out {
	c.seen.Add(1)
	return c.Behavior.Outgoing(o)
}

// Unwrap is the counted behaviour (behavior.RecipeOf reads its recipe).
func (c *counting) Unwrap() behavior.Behavior { return c.Behavior }

// Inject puts the behaviour on every node of a resolved target
// "component/node-a,node-b" and waits to see it act on a send; the revert
// makes them correct again.
func (in *injector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	comp, list, ok := strings.Cut(target, "/")
	b, known := in.byz[comp]
	if !ok || !known || list == "" {
		return nil, fmt.Errorf("byzantine: target %q: want <component>/<node>[,<node>] of a Byzantine-fault-tolerant component", target)
	}
	name, rest := split(params)
	if name == "" {
		name = drawable()[0]
	}
	seed := seedOf(target, params)
	all := b.NodeIDs()
	var installed []string
	var counters []*counting
	undo := func() {
		for _, id := range installed {
			_ = b.SetBehavior(id, nil)
		}
	}
	for _, id := range strings.Split(list, ",") {
		self := slices.Index(all, id)
		if self < 0 {
			undo()
			return nil, fmt.Errorf("byzantine: %s has no node %q", comp, id)
		}
		beh, err := behavior.New(name, rest, protocol.ReplicaID(self), len(all), seed+uint64(self))
		if err != nil {
			undo()
			return nil, fmt.Errorf("byzantine: %w", err)
		}
		c := &counting{Behavior: beh}
		if err := b.SetBehavior(id, c); err != nil {
			undo()
			return nil, fmt.Errorf("byzantine %s/%s: %w", comp, id, err)
		}
		installed = append(installed, id)
		counters = append(counters, c)
	}
	seen := func() int64 {
		total := int64(0)
		for i, c := range counters {
			total += c.seen.Load()
			if a, ok := b.(ActedCounter); ok {
				if n, ok := a.BehaviorActed(installed[i]); ok {
					total += n
				}
			}
		}
		return total
	}
	in.verify(ctx, target, name, seen)
	var done atomic.Bool
	return func(context.Context) error {
		if done.Swap(true) {
			return nil
		}
		var errs []error
		for _, id := range installed {
			errs = append(errs, b.SetBehavior(id, nil))
		}
		return errors.Join(errs...)
	}, nil
}

// verify logs whether the behaviour saw a send within verifyWithin: a
// replica with no load sends nothing, which is not an error.
func (in *injector) verify(ctx context.Context, target, name string, seen func() int64) {
	deadline := time.Now().Add(verifyWithin)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if total := seen(); total > 0 {
			faults.Verified(ctx, fmt.Sprintf("%s acted on %d outgoing messages", name, total))
			in.log.Info("byzantine fault verified", "target", target, "behavior", name, "messages", total)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	faults.Verified(ctx, fmt.Sprintf("not verified: no message sent within %v", verifyWithin))
	in.log.Warn("byzantine fault not verified: the replica sent nothing yet", "target", target, "behavior", name)
}

// seedOf is the seed param, or one derived from the target and params, so
// a replayed fault behaves the same.
func seedOf(target string, params map[string]string) uint64 {
	if s, ok := params["seed"]; ok {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v
		}
	}
	h := fnv.New64a()
	h.Write([]byte(target))
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.Write([]byte(k + "=" + params[k] + ";"))
	}
	return h.Sum64()
}
