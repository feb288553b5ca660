package network

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// Delay defaults, used when a fault names none.
const (
	DefaultLatency = 100 * time.Millisecond
	DefaultJitter  = 10 * time.Millisecond
)

// delay holds what the target's nodes send for latency ± jitter, so every
// round trip over their links takes about latency longer.
var delayKind = &linkKind{name: "delay", parse: parseDelay,
	apply: func(f *fabric.Fabric, sel fabric.Selector, p plan) (func(context.Context) error, error) {
		return f.Delay(sel, p.latency, p.jitter)
	},
	verify: func(ctx context.Context, f *fabric.Fabric, p plan, l fabric.Link) (string, error) {
		e := f.InForce(l)
		rtt, err := probe(ctx, f, l, 1, e.Latency+e.Jitter+verifySlack)
		if err != nil {
			return "", err
		}
		if low := p.latency - p.jitter; rtt < low {
			return "", fmt.Errorf("probe round trip %v < %v", rtt, low)
		}
		return fmt.Sprintf("probe round trip %v", rtt.Round(100*time.Microsecond)), nil
	},
	facts: faults.Spec{
		Params: []faults.Param{
			{Name: "latency", Doc: "added to each round trip (default 100ms)"},
			{Name: "jitter", Doc: "± spread, at most latency (default 10ms, or 0 when latency is given)"},
		},
		Roles: []components.Role{components.RoleLeader, components.RoleFollower, components.RoleLink},
		// Datacenter-scale delays: 20-200 ms, jitter up to 20 ms.
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"latency": strconv.Itoa(20+rng.IntN(181)) + "ms", "jitter": strconv.Itoa(rng.IntN(21)) + "ms"}
		},
	},
}

func parseDelay(params map[string]string) (plan, error) {
	p := plan{latency: DefaultLatency, jitter: DefaultJitter}
	if s, ok := params["latency"]; ok {
		d, err := config.ParseDuration(s)
		if err != nil {
			return plan{}, faults.BadParam("latency", "%v", err)
		}
		p.latency = d.Std()
		if _, ok := params["jitter"]; !ok {
			p.jitter = 0
		}
	}
	if s, ok := params["jitter"]; ok {
		d, err := config.ParseDuration(s)
		if err != nil {
			return plan{}, faults.BadParam("jitter", "%v", err)
		}
		p.jitter = d.Std()
	}
	if p.latency <= 0 {
		return plan{}, faults.BadParam("latency", "must be > 0")
	}
	if p.jitter > p.latency {
		return plan{}, faults.BadParam("jitter", "%v must not exceed latency %v", p.jitter, p.latency)
	}
	return p, nil
}
