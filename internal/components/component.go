package components

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/config"
)

// Outcome classifies a finished operation. The checkers need the
// difference between Failed (definitely not applied) and Unknown (timed out
// or lost in flight: it may have been applied).
type Outcome string

const (
	OutcomeOK      Outcome = "ok"
	OutcomeFailed  Outcome = "failed"
	OutcomeUnknown Outcome = "unknown"
)

// Op is one operation the load engine asks a component to perform.
type Op struct {
	Name  string // "put", "get", "cas", "request", "migrate", ...
	Key   string
	Value []byte
	// Expect is the compare value of a compare-and-swap.
	Expect []byte
}

// Result is what a component reports for one Op.
type Result struct {
	Outcome Outcome
	Value   []byte
	// Swapped reports whether a cas found its Expect and wrote its Value.
	// A cas that does not swap is still OutcomeOK: the compare happened.
	Swapped bool
	Err     error
}

type clientIDKey struct{}

// WithClientID tags the operations done with ctx as one client's (a load
// worker's), so history checkers see that client's ops as sequential.
func WithClientID(ctx context.Context, id int) context.Context {
	return context.WithValue(ctx, clientIDKey{}, id)
}

// ClientID returns the id set by WithClientID.
func ClientID(ctx context.Context) (int, bool) {
	id, ok := ctx.Value(clientIDKey{}).(int)
	return id, ok
}

// Health is a component's own view of whether it can serve.
type Health struct {
	Healthy bool
	Detail  string // why not, when unhealthy; free text for /api/v1/status
}

// Component is one system under soak. Start brings it up (recovering from
// its state dir when one exists), Stop takes it down gracefully and must
// leave no goroutines behind. Do is safe for concurrent use and honours
// ctx's deadline.
type Component interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Health() Health
	// Ops lists the operation names Do accepts; the load mix is validated
	// against it at start-up.
	Ops() []string
	Do(ctx context.Context, op Op) Result
}

// Summarizer is implemented by a component with more to say in the status
// than its health: a small JSON-ready document (a few fields, bounded)
// whose "line" field, if any, is what `soakd status` prints.
type Summarizer interface {
	Summary() any
}

// Nodes is implemented by components made of several nodes that the process
// fault kind can crash and restart.
type Nodes interface {
	// NodeIDs lists the component's nodes in a stable order.
	NodeIDs() []string
	// Crash stops a node abruptly: no graceful shutdown, in-memory state lost.
	Crash(node string) error
	// Restart recovers a crashed node from its own disk and rejoins it.
	Restart(node string) error
}

// ProcessTarget is a node process a component runs or drives, for the
// leak checker to soak beside soakd itself.
type ProcessTarget struct {
	Node string
	// PprofURL is the base of its net/http/pprof handlers, ending in
	// "/debug/pprof/"; MetricsURL its /metrics.
	PprofURL, MetricsURL string
	// Local says it runs on this machine, as PID (0: down).
	Local bool
	PID   int
}

// ExternalLinks is a component whose links may not run through soakd's
// fabric (nodes soakd did not start): ExternalLinks says why, or "" when
// they do. Local network faults refuse such a component rather than shape
// links nobody uses.
type ExternalLinks interface {
	ExternalLinks() string
}

// ProcessTargets is a component whose nodes are processes of their own.
type ProcessTargets interface {
	// ProcessTargets lists them, with their addresses now.
	ProcessTargets() []ProcessTarget
}

// Dialer opens a connection from node from to node to at addr. Every
// node-to-node connection of a component goes through it, so the fault
// fabric can delay, throttle, drop or cut single links.
type Dialer func(ctx context.Context, from, to, addr string) (net.Conn, error)

// DirectDialer dials addr over TCP with no fault in the way.
func DirectDialer(ctx context.Context, _, _, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// TargetResolver is implemented by components whose nodes faults can
// target. Resolve maps a selector ("leader", "follower", "node-2",
// "minority", "majority", "all") to the node ids it names now; pick seeds
// any choice among equals, so a replayed fault picks the same way.
type TargetResolver interface {
	Resolve(selector string, pick uint64) ([]string, error)
}

// Deps is what a component gets from the run that builds it.
type Deps struct {
	// StateDir is the component's own directory (<state-dir>/components/<name>).
	StateDir string
	Seed     uint64
	Clock    clockwork.Clock
	Logger   *slog.Logger
	Config   *config.Config
	// Dial is the link hook (nil: DirectDialer).
	Dial Dialer
	// LinkAddr is the link hook for nodes in other processes, which cannot
	// take a Dialer: the address at which node from reaches node to,
	// listening at addr, through the fault fabric (a per-link proxy). Nil:
	// addr itself, the link is not faulted.
	LinkAddr func(from, to, addr string) (string, error)
	// Metrics is where the component registers its collectors (nil: a
	// private registry).
	Metrics prometheus.Registerer
	// Event journals an event (nil: dropped).
	Event func(typ string, fields map[string]any)
	// Peer finds a component built before this one (registration order),
	// for a component that uses another: migration records guest owners
	// in raft. nil: none.
	Peer func(name string) (Component, bool)
}

// Factory builds a component from the run's configuration.
type Factory func(deps Deps) (Component, error)

// ErrNoSuchNode is returned by Crash and Restart for an unknown node id.
var ErrNoSuchNode = errors.New("no such node")

// DefaultOpTimeout bounds an operation whose caller set no deadline, so a
// wedged component can never pin a worker forever.
const DefaultOpTimeout = 5 * time.Second

// Resolvers are the target resolvers of the components that have one, by
// component name.
func Resolvers(cs []Component) map[string]TargetResolver {
	out := map[string]TargetResolver{}
	for _, c := range cs {
		if r, ok := c.(TargetResolver); ok {
			out[c.Name()] = r
		}
	}
	return out
}

// NodesOf returns the components whose nodes can crash, by component name.
func NodesOf(cs []Component) map[string]Nodes {
	out := map[string]Nodes{}
	for _, c := range cs {
		if n, ok := c.(Nodes); ok {
			out[c.Name()] = n
		}
	}
	return out
}

// MessageFaults is implemented by a component whose node-to-node messages
// a fault can drop, duplicate or reorder one at a time (PBFT): the
// network's doing, below authentication, unlike a Byzantine replica's.
// SetMessageFaults sets what node's outgoing messages meet (the zero value:
// nothing).
type MessageFaults interface {
	SetMessageFaults(node string, f MessageFault) error
}

// MessageFault is what a node's outgoing messages meet, per message and
// per receiving link.
type MessageFault struct {
	Drop      float64 // probability a message is lost
	Duplicate float64 // probability a message is sent twice
	Reorder   int     // messages held and released in a shuffled order (0, 1: none)
	Seed      uint64
}

// NodeResources is implemented by components whose nodes the resource
// fault kinds can aim at: a node's data directory (where a disk fault
// fills the filesystem) and the addresses it listens on (which a
// connections fault exhausts).
type NodeResources interface {
	NodeDir(node string) (string, error)
	ListenAddrs(node string) ([]string, error)
}
