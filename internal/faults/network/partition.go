package network

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// partition cuts the target's nodes off: open connections close and new
// dials time out. A partitioned node is out of service, so it counts
// against faults.blast_radius.
var partitionKind = &linkKind{name: "partition", parse: parsePartition, selection: partitionLinks, selfMasking: true,
	apply: ruleOf((*fabric.Fabric).Cut),
	verify: func(ctx context.Context, f *fabric.Fabric, _ plan, l fabric.Link) (string, error) {
		if _, err := probe(ctx, f, l, 1, verifyCut); err == nil {
			return "", fmt.Errorf("probe over %s still connected", l)
		}
		return "probe could not connect", nil
	},
	facts: faults.Spec{
		Params: []faults.Param{
			{Name: "mode", Doc: "isolate (default: every link of the target), split (target vs the rest) or oneway"},
			{Name: "direction", Doc: "oneway only: out (default: the target's dials) or in"},
		},
		Roles:         []components.Role{components.RoleLeader, components.RoleFollower, components.RoleMinority},
		Draw:          func(*rand.Rand) map[string]string { return map[string]string{"mode": "isolate"} },
		TakesNodesOut: true,
	},
}

func parsePartition(params map[string]string) (plan, error) {
	p := plan{mode: "isolate", direction: "out"}
	if m, ok := params["mode"]; ok {
		p.mode = m
	}
	switch p.mode {
	case "isolate", "split", "oneway":
	default:
		return plan{}, faults.BadParam("mode", "want isolate, split or oneway, got %q", p.mode)
	}
	if d, ok := params["direction"]; ok {
		if p.mode != "oneway" {
			return plan{}, faults.BadParam("direction", "applies to mode oneway only")
		}
		if d != "out" && d != "in" {
			return plan{}, faults.BadParam("direction", "want out or in, got %q", d)
		}
		p.direction = d
	}
	return p, nil
}

// partitionLinks picks the links a partition cuts and the link to probe.
func partitionLinks(p plan, nodes, rest []string) (fabric.Selector, fabric.Link, error) {
	if p.mode == "isolate" {
		return isolate(p, nodes, rest)
	}
	if len(rest) == 0 {
		return fabric.Selector{}, fabric.Link{}, fmt.Errorf("partition mode %s needs nodes on the other side", p.mode)
	}
	if p.mode == "split" {
		return fabric.Split(nodes, rest), fabric.Link{From: nodes[0], To: rest[0]}, nil
	}
	var sels []fabric.Selector
	for _, n := range nodes {
		for _, r := range rest {
			if p.direction == "in" {
				sels = append(sels, fabric.OneWay(r, n))
			} else {
				sels = append(sels, fabric.OneWay(n, r))
			}
		}
	}
	if p.direction == "in" {
		return fabric.Union(sels...), fabric.Link{From: rest[0], To: nodes[0]}, nil
	}
	return fabric.Union(sels...), fabric.Link{From: nodes[0], To: rest[0]}, nil
}
