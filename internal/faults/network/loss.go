package network

import (
	"context"
	"math/rand/v2"
	"strconv"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
)

// DefaultProbability is the loss probability when a fault names none.
const DefaultProbability = 0.1

// loss makes each connection on the target's links go silent with the
// given probability (a stream has no packets to drop; see internal/fabric).
// It is statistical, so it is not verified at run time; the fabric's tests
// check its rate.
var lossKind = &linkKind{name: "loss", parse: parseLoss,
	apply: func(f *fabric.Fabric, sel fabric.Selector, p plan) (func(context.Context) error, error) {
		return f.Loss(sel, p.probability)
	},
	facts: faults.Spec{
		Params: []faults.Param{{Name: "probability", Doc: "share of connections silenced, 0.1 or 10% (default 10%)"}},
		Roles:  []components.Role{components.RoleFollower, components.RoleLink},
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"probability": strconv.Itoa(5+rng.IntN(26)) + "%"}
		},
	},
}

func parseLoss(params map[string]string) (plan, error) {
	s, ok := params["probability"]
	if !ok {
		return plan{probability: DefaultProbability}, nil
	}
	v, err := ParseProbability(s)
	if err != nil {
		return plan{}, faults.BadParam("probability", "%v", err)
	}
	return plan{probability: v}, nil
}
