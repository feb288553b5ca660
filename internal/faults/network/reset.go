package network

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// reset resets the target's open connections at injection and new ones on
// their first byte (toxiproxy's reset_peer with timeout 0).
var resetKind = &linkKind{name: "reset", parse: noParams,
	apply: ruleOf((*fabric.Fabric).Reset),
	verify: func(ctx context.Context, f *fabric.Fabric, _ plan, l fabric.Link) (string, error) {
		_, err := probe(ctx, f, l, 1, verifySlack)
		if err == nil {
			return "", fmt.Errorf("probe over %s echoed", l)
		}
		// Timing out is not being reset (the connection's deadline may
		// fire just before the context's).
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
			return "", fmt.Errorf("probe over %s was not reset: %w", l, err)
		}
		return "probe reset: " + err.Error(), nil
	},
	facts: faults.Spec{
		Roles: []components.Role{components.RoleFollower, components.RoleLink},
		Draw:  func(*rand.Rand) map[string]string { return nil },
	},
}
