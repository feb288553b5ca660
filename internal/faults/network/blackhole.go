package network

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// blackhole lets the target's links accept connections and data and
// deliver nothing until reverted, like a network that drops every packet.
// The node is out of service, so it counts against faults.blast_radius.
var blackholeKind = &linkKind{name: "blackhole", parse: noParams,
	apply: ruleOf((*fabric.Fabric).Blackhole),
	verify: func(ctx context.Context, f *fabric.Fabric, _ plan, l fabric.Link) (string, error) {
		if rtt, err := probe(ctx, f, l, 1, verifyCut); err == nil {
			return "", fmt.Errorf("probe over %s echoed in %v", l, rtt)
		}
		return fmt.Sprintf("no echo within %v", verifyCut), nil
	},
	facts: faults.Spec{
		Roles:         []components.Role{components.RoleFollower},
		Draw:          func(*rand.Rand) map[string]string { return nil },
		TakesNodesOut: true,
	},
}
