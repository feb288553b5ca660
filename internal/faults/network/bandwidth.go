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

// DefaultRate is the bandwidth cap when a fault names none.
const DefaultRate = "1MiB/s"

// bandwidth caps each direction of the target's links, shared by their
// connections: a thin pipe, as when a migration crosses a WAN link.
var bandwidthKind = &linkKind{name: "bandwidth", parse: parseBandwidth,
	apply: func(f *fabric.Fabric, sel fabric.Selector, p plan) (func(context.Context) error, error) {
		return f.Bandwidth(sel, p.rate)
	},
	verify: func(ctx context.Context, f *fabric.Fabric, p plan, l fabric.Link) (string, error) {
		e := f.InForce(l)
		n := int(min(max(p.rate/4, 256), fabric.MaxProbePayload))
		want := time.Duration(float64(n) / p.rate * float64(time.Second))
		rtt, err := probe(ctx, f, l, n, 2*want+e.Latency+e.Jitter+verifySlack)
		if err != nil {
			return "", err
		}
		got := float64(n) / rtt.Seconds()
		if got > 1.5*p.rate {
			return "", fmt.Errorf("probe moved %d bytes at %.0f B/s, cap %.0f B/s", n, got, p.rate)
		}
		return fmt.Sprintf("probe moved %d bytes at %.0f B/s", n, got), nil
	},
	facts: faults.Spec{
		Params: []faults.Param{{Name: "rate", Doc: "cap per direction, e.g. 1MiB/s (default)"}},
		Roles:  []components.Role{components.RoleFollower, components.RoleLink},
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"rate": strconv.Itoa(1+rng.IntN(16)) + "MiB/s"}
		},
	},
}

func parseBandwidth(params map[string]string) (plan, error) {
	s, ok := params["rate"]
	if !ok {
		s = DefaultRate
	}
	r, err := config.ParseRate(s)
	if err != nil {
		return plan{}, faults.BadParam("rate", "%v", err)
	}
	if r.PerSecond() < 1 {
		return plan{}, faults.BadParam("rate", "must be at least 1 byte/s, got %q", s)
	}
	return plan{rate: r.PerSecond()}, nil
}
