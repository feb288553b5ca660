package network

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// reset resets the target's open connections at injection and new ones on
// their first byte (toxiproxy's reset_peer with timeout 0).
var resetKind = &linkKind{name: "reset", parse: noParams,
	apply: func(f *fabric.Fabric, sel fabric.Selector, _ plan) (func(context.Context) error, error) {
		return f.Reset(sel)
	},
	verify: func(ctx context.Context, f *fabric.Fabric, _ plan, l fabric.Link) (string, error) {
		pctx, cancel := context.WithTimeout(ctx, verifySlack)
		defer cancel()
		_, err := f.Probe(pctx, l, 1)
		if err == nil {
			return "", fmt.Errorf("probe over %s echoed", l)
		}
		if pctx.Err() != nil {
			return "", fmt.Errorf("probe over %s was not reset: %w", l, err)
		}
		return "probe reset: " + err.Error(), nil
	},
	facts: faults.Spec{
		Roles: []components.Role{components.RoleFollower, components.RoleLink},
		Draw:  func(*rand.Rand) map[string]string { return nil },
	},
}
