package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/offheap"
)

// dialTimeout bounds each connection a connections fault opens.
const dialTimeout = 2 * time.Second

// Connections is the "connections" fault kind: soakd opens `count` TCP
// connections to the listeners of a component's node (or to its own HTTP
// API, target self), spread over the node's addresses, and holds them
// open, idle, until the revert closes them; verified by the count
// established. The client ends are subtracted from the open-fds signal
// (package offheap); the accepting ends are the component's, so the fault
// marks the open-fds and goroutine signals as disturbed (faults.Spec
// Disturbs) while it is in force and settling.
func Connections() faults.Spec {
	return faults.Spec{
		Name: "connections",
		Params: []faults.Param{
			{Name: "count", Doc: "connections to hold (default 200, at most faults.resource.max_connections)"},
		},
		Check: func(p map[string]string) error { _, err := parseConnections(p); return err },
		Bounds: func(c *config.Config, p map[string]string) error {
			n, err := parseConnections(p)
			if err == nil && n > c.Faults.Resource.MaxConnections {
				return faults.BadParam("count", "%d is above faults.resource.max_connections (%d)", n, c.Faults.Resource.MaxConnections)
			}
			return err
		},
		Self:  true,
		Roles: []components.Role{components.RoleLeader, components.RoleFollower},
		// Each held connection costs both ends a descriptor and the
		// node's side a goroutine and its read buffers, all in soakd's own
		// process: a real soak saw the heap step up 50 MiB for 300 of them.
		Disturbs: []string{leakcheck.SignalFDs, leakcheck.SignalGoroutines, leakcheck.SignalHeap, leakcheck.SignalRSS},
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"count": strconv.Itoa(50 + rng.IntN(251))}
		},
		New: func(env faults.Env) (faults.Injector, error) {
			return &connInjector{log: logger(env), bounds: bounds(env), self: env.SelfAddr,
				nodes: nodeResources(env.Components)}, nil
		},
	}
}

func parseConnections(p map[string]string) (int, error) {
	n := 200
	if s, ok := p["count"]; ok {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return 0, faults.BadParam("count", "must be a whole number of at least 1, got %q", s)
		}
		n = v
	}
	return n, nil
}

type connInjector struct {
	log    *slog.Logger
	bounds config.ResourceBounds
	self   string
	nodes  map[string]components.NodeResources
}

func (in *connInjector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	count, err := parseConnections(params)
	if err != nil {
		return nil, err
	}
	// A timeline count above the bound is refused by check-config; a drawn
	// one is cut to it.
	if count = min(count, in.bounds.MaxConnections); count < 1 {
		return nil, errors.New("connections: faults.resource.max_connections is 0")
	}
	addrs, err := in.addrs(target)
	if err != nil {
		return nil, err
	}
	conns := make([]net.Conn, 0, count)
	closeAll := func() {
		for _, c := range conns {
			offheap.AddHeldFDs(-1)
			_ = c.Close()
		}
	}
	d := net.Dialer{Timeout: dialTimeout}
	for i := range count {
		c, err := d.DialContext(ctx, "tcp", addrs[i%len(addrs)])
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("connections: %d of %d established to %s, then: %w", len(conns), count, target, err)
		}
		offheap.AddHeldFDs(1)
		conns = append(conns, c)
	}
	faults.Verified(ctx, fmt.Sprintf("%d connections held open to %s", len(conns), target))
	in.log.Info("connections fault verified", "target", target, "addrs", addrs, "held", len(conns))
	var once sync.Once
	return func(context.Context) error {
		once.Do(closeAll)
		return nil
	}, nil
}

// addrs are the listening addresses of a target.
func (in *connInjector) addrs(target string) ([]string, error) {
	if target == "self" {
		if in.self == "" {
			return nil, errors.New("connections: target self: soakd's own address is unknown")
		}
		return []string{in.self}, nil
	}
	res, comp, ids, err := resolveNodes(in.nodes, target)
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	var out []string
	for _, id := range ids {
		a, err := res.ListenAddrs(id)
		if err != nil {
			return nil, fmt.Errorf("connections: %s/%s: %w", comp, id, err)
		}
		out = append(out, a...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("connections: %s listens nowhere now", target)
	}
	return out, nil
}
