// Package message holds the message-level network fault kinds for
// components whose nodes exchange discrete protocol messages (PBFT,
// through components.MessageFaults): `drop` loses single messages,
// `duplicate` sends some twice, `reorder` holds a window of messages and
// releases them shuffled. They act on a node's outgoing messages to every
// peer, after authentication, as a network would; the connection-level
// `loss` kind (package network) stays the one for TCP streams. Their
// effect is statistical: a fault is checked when injected (the component
// took it), and the protocol's tests show what it does.
package message

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// Defaults when a fault names none.
const (
	DefaultDrop      = 0.05
	DefaultDuplicate = 0.10
	DefaultWindow    = 8
	maxWindow        = 1024
)

// Specs are the message-level kinds.
func Specs() []faults.Spec {
	return []faults.Spec{
		spec("drop", []faults.Param{{Name: "probability", Doc: "share of messages lost (default 5%)"}},
			func(rng *rand.Rand) map[string]string {
				return map[string]string{"probability": strconv.Itoa(1+rng.IntN(20)) + "%"}
			}),
		spec("duplicate", []faults.Param{{Name: "probability", Doc: "share of messages sent twice (default 10%)"}},
			func(rng *rand.Rand) map[string]string {
				return map[string]string{"probability": strconv.Itoa(5+rng.IntN(46)) + "%"}
			}),
		spec("reorder", []faults.Param{{Name: "window", Doc: "messages held and released shuffled, per link (default 8; at most a tick)"}},
			func(rng *rand.Rand) map[string]string {
				return map[string]string{"window": strconv.Itoa(2 + rng.IntN(15))}
			}),
	}
}

func spec(name string, params []faults.Param, draw func(*rand.Rand) map[string]string) faults.Spec {
	return faults.Spec{
		Name:   name,
		Params: params,
		Check:  func(p map[string]string) error { _, err := parse(name, p); return err },
		Roles:  []components.Role{components.RoleMessages},
		Draw:   draw,
		New: func(env faults.Env) (faults.Injector, error) {
			in := &injector{kind: name, comps: map[string]components.MessageFaults{}}
			for _, c := range env.Components {
				if m, ok := c.(components.MessageFaults); ok {
					in.comps[c.Name()] = m
				}
			}
			return in, nil
		},
	}
}

// parse turns a kind's params into the fault (without its seed).
func parse(kind string, p map[string]string) (components.MessageFault, error) {
	var f components.MessageFault
	switch kind {
	case "drop", "duplicate":
		prob := DefaultDrop
		if kind == "duplicate" {
			prob = DefaultDuplicate
		}
		if s, ok := p["probability"]; ok {
			v, err := config.ParsePercent(s)
			if err != nil || v.Fraction() <= 0 || v.Fraction() > 1 {
				return f, faults.BadParam("probability", "must be a share in (0%%, 100%%], got %q", s)
			}
			prob = v.Fraction()
		}
		if kind == "drop" {
			f.Drop = prob
		} else {
			f.Duplicate = prob
		}
	case "reorder":
		f.Reorder = DefaultWindow
		if s, ok := p["window"]; ok {
			v, err := strconv.Atoi(s)
			if err != nil || v < 2 || v > maxWindow {
				return f, faults.BadParam("window", "must be a whole number of messages in 2..%d, got %q", maxWindow, s)
			}
			f.Reorder = v
		}
	}
	return f, nil
}

type injector struct {
	kind  string
	comps map[string]components.MessageFaults
}

// Inject puts the fault on every node of "component/node-a,node-b"; the
// revert lifts it (messages it held are lost, as in-flight ones would be).
func (in *injector) Inject(_ context.Context, target string, params map[string]string) (faults.Revert, error) {
	comp, list, ok := strings.Cut(target, "/")
	m, known := in.comps[comp]
	if !ok || !known || list == "" {
		return nil, fmt.Errorf("%s: target %q: want <component>/<node>[,<node>] of a component with message faults", in.kind, target)
	}
	f, err := parse(in.kind, params)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte(in.kind + "|" + target))
	f.Seed = h.Sum64()
	var done []string
	for _, id := range strings.Split(list, ",") {
		if err := m.SetMessageFaults(id, f); err != nil {
			for _, d := range done {
				_ = m.SetMessageFaults(d, components.MessageFault{})
			}
			return nil, fmt.Errorf("%s %s/%s: %w", in.kind, comp, id, err)
		}
		done = append(done, id)
	}
	var reverted atomic.Bool
	return func(context.Context) error {
		if reverted.Swap(true) {
			return nil
		}
		var errs []error
		for _, id := range slices.Clone(done) {
			errs = append(errs, m.SetMessageFaults(id, components.MessageFault{}))
		}
		return errors.Join(errs...)
	}, nil
}
