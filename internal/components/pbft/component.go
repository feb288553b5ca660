package pbft

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/auth"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/config"
)

// Spec registers the PBFT component: enabled by components.pbft, driven
// by load.pbft, targets primary, backup and minority.
func Spec() components.Spec {
	return components.Spec{
		Name:    "pbft",
		Factory: New,
		Enabled: func(c *config.Config) bool { return c.Components.PBFT.Enabled },
		Load:    func(c *config.Config) (config.RateLoad, bool) { return c.Load.PBFT, true },
		Targets: []components.Target{{Role: components.RoleLeader, Selector: "primary"},
			{Role: components.RoleFollower, Selector: "backup"}, {Role: components.RoleMinority, Selector: "minority"},
			{Role: components.RoleByzantine, Selector: "primary"}, {Role: components.RoleByzantine, Selector: "backup"},
			{Role: components.RoleMessages, Selector: "primary"}, {Role: components.RoleMessages, Selector: "backup"}},
	}
}

// Protocol parameters for a cluster on loopback.
const (
	checkpointInterval = 16
	batchSize          = 64
	batchTimeoutTicks  = 1  // 10 ms
	viewChangeTicks    = 50 // 500 ms
	defaultMaxKeys     = 1 << 16
)

// Cluster is the PBFT component: n = 3f+1 replicas, each with its own
// listener, disk and links through the component's Dialer. They run in
// this process (mode inprocess) or as `soakd node` processes (procs.go);
// the clients, the checkers and the faults drive both the same way.
type Cluster struct {
	replicaEnv
	f        int
	seed     uint64
	stateDir string
	event    func(string, map[string]any)
	nodes    []replica
	clients  clients
	checks   *checks
	recorder atomic.Pointer[recorderBox]
	stopTick chan struct{}
	tickDone chan struct{}

	// Replicas as processes (procs.go): the mode, soakd's executable, the
	// fabric's proxy for a link, and the client of their APIs.
	procMode string
	bin      string
	linkAddr func(from, to, addr string) (string, error)
	http     *http.Client
}

// replica is one member as the Cluster drives it: a node in this process
// (node) or a `soakd node` process (procReplica).
type replica interface {
	Name() string
	start() error
	// stop halts the replica; crash: abruptly (SIGKILL for a process).
	stop(crash bool)
	state() (running bool, st protocol.Status)
	// request hands a client's request to the replica.
	request(m protocol.Message)
	setBehavior(b byzantine.Behavior) error
	setMessageFaults(f components.MessageFault) error
	stateDir() string
	// listenAddr is where the replica's peers and clients reach it ("" while down).
	listenAddr() string
}

type recorderBox struct{ r components.KVRecorder }

// New builds the component from the config; Start brings it up.
func New(deps components.Deps) (components.Component, error) {
	if deps.Config == nil {
		return nil, errors.New("pbft: no config")
	}
	n := deps.Config.Components.PBFT.Replicas
	if n < 4 || (n-1)%3 != 0 {
		return nil, fmt.Errorf("pbft: replicas must be 3f+1 >= 4, got %d", n)
	}
	if deps.StateDir == "" {
		return nil, errors.New("pbft: no state dir")
	}
	c := &Cluster{f: (n - 1) / 3, seed: deps.Seed, stateDir: deps.StateDir, event: deps.Event,
		replicaEnv: replicaEnv{n: n, log: deps.Logger, dial: deps.Dial, keys: auth.NewKeys(deps.Seed, n), mode: auth.MACs,
			maxKeys: deps.Config.Load.PBFT.Keys}}
	c.sink = c
	c.peerAddr = func(j int) string { return c.nodes[j].listenAddr() }
	c.linkAddr = deps.LinkAddr
	if c.maxKeys <= 0 {
		c.maxKeys = defaultMaxKeys
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.dial == nil {
		c.dial = components.DirectDialer
	}
	if c.event == nil {
		c.event = func(string, map[string]any) {}
	}
	c.clients = clients{last: map[uint64]uint64{}, waiting: map[waitKey]*waiter{}}
	var err error
	names := make([]string, n)
	for i := range n {
		names[i] = replicaName(i)
	}
	if c.m, err = newMetrics(deps.Metrics, names); err != nil {
		return nil, err
	}
	switch pc := deps.Config.Components.PBFT; pc.Mode {
	case config.ModeProcesses, config.ModeRemote:
		if err := c.newProcReplicas(pc); err != nil {
			return nil, err
		}
	default:
		for i := range n {
			c.nodes = append(c.nodes, newNode(&c.replicaEnv, i, c.stateDir))
		}
	}
	if deps.Metrics != nil {
		if err := deps.Metrics.Register(newStatusCollector(c)); err != nil {
			return nil, err
		}
	}
	lv := deps.Config.Components.PBFT.Liveness
	c.checks = newChecks(c, lv.Commit.Std(), lv.Drain.Std())
	return c, nil
}

func (c *Cluster) Name() string  { return "pbft" }
func (c *Cluster) Ops() []string { return []string{"put", "get", "cas"} }

// Start recovers every replica from its disk and starts it.
func (c *Cluster) Start(context.Context) error {
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			_ = c.Stop(context.Background())
			return err
		}
	}
	c.stopTick, c.tickDone = make(chan struct{}), make(chan struct{})
	go c.tickChecks()
	c.log.Info("pbft replicas up", "replicas", c.n, "f", c.f, "auth", "mac", "mode", cmp.Or(c.procMode, config.ModeInProcess))
	return nil
}

// tickChecks drives the liveness deadlines.
func (c *Cluster) tickChecks() {
	defer close(c.tickDone)
	t := time.NewTicker(checkTick)
	defer t.Stop()
	for {
		select {
		case <-c.stopTick:
			return
		case <-t.C:
			c.checks.tick()
		}
	}
}

// Stop halts every replica; their disks keep what they executed.
func (c *Cluster) Stop(context.Context) error {
	if c.stopTick != nil {
		close(c.stopTick)
		<-c.tickDone
		c.stopTick = nil
	}
	for _, n := range c.nodes {
		n.stop(false)
		if r, ok := n.(*procReplica); ok {
			r.close()
		}
	}
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
	return nil
}

// Health: the cluster serves with 2f+1 replicas up.
func (c *Cluster) Health() components.Health {
	up := 0
	for _, n := range c.nodes {
		if running, _ := n.state(); running {
			up++
		}
	}
	if up < 2*c.f+1 {
		return components.Health{Detail: fmt.Sprintf("%d of %d replicas up, need %d", up, c.n, 2*c.f+1)}
	}
	return components.Health{Healthy: true}
}

// SetRecorder implements components.KVHistory.
func (c *Cluster) SetRecorder(r components.KVRecorder) {
	if r == nil {
		c.recorder.Store(nil)
		return
	}
	c.recorder.Store(&recorderBox{r: r})
}

// NodeIDs are the replicas, node-1..node-n.
func (c *Cluster) NodeIDs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Name()
	}
	return out
}

func (c *Cluster) node(id string) (replica, error) {
	for _, n := range c.nodes {
		if n.Name() == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("pbft: %w: %s", components.ErrNoSuchNode, id)
}

// Crash stops a replica abruptly; what it executed is on its disk.
func (c *Cluster) Crash(id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if err := c.errRemote("crash", id); err != nil {
		return err
	}
	n.stop(true)
	if c.procMode == config.ModeProcesses {
		c.event("pbft_node_crashed", map[string]any{"node": id, "signal": "SIGKILL"})
	}
	return nil
}

// Restart recovers a crashed replica from its disk: it catches up by the
// protocol (state transfer when it fell behind).
func (c *Cluster) Restart(id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if err := c.errRemote("restart", id); err != nil {
		return err
	}
	if running, _ := n.state(); running {
		return nil
	}
	if err := n.start(); err != nil {
		return err
	}
	if c.procMode == config.ModeProcesses {
		c.event("pbft_node_restarted", map[string]any{"node": id})
	}
	return nil
}

// primary is the replica most running replicas follow as primary now.
func (c *Cluster) primary() (string, bool) {
	votes := map[protocol.ReplicaID]int{}
	for _, n := range c.nodes {
		if running, st := n.state(); running {
			votes[st.Primary]++
		}
	}
	best, bestVotes := protocol.ReplicaID(0), 0
	for id, v := range votes {
		if v > bestVotes || (v == bestVotes && id < best) {
			best, bestVotes = id, v
		}
	}
	if bestVotes == 0 {
		return "", false
	}
	return c.nodes[best].Name(), true
}

// Resolve maps a selector to replicas: primary, backup (one, by pick),
// minority (f replicas, the primary first), all, node-N.
func (c *Cluster) Resolve(sel string, pick uint64) ([]string, error) {
	all := c.NodeIDs()
	prim, ok := c.primary()
	var backups []string
	for _, id := range all {
		if id != prim {
			backups = append(backups, id)
		}
	}
	switch sel {
	case "primary":
		if !ok {
			return nil, errors.New("pbft/primary: no replica is running")
		}
		return []string{prim}, nil
	case "backup":
		return []string{backups[pick%uint64(len(backups))]}, nil
	case "minority":
		out := []string{}
		if ok {
			out = append(out, prim)
		}
		for i := 0; len(out) < c.f; i++ {
			out = append(out, backups[(int(pick)+i)%len(backups)])
		}
		return out[:c.f], nil
	case "all":
		return all, nil
	}
	if slices.Contains(all, sel) {
		return []string{sel}, nil
	}
	return nil, fmt.Errorf("pbft: unknown target %q (want primary, backup, minority, all or node-N)", sel)
}

// SetBehavior puts a Byzantine behaviour on a replica's sends (nil: none).
func (c *Cluster) SetBehavior(id string, b byzantine.Behavior) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if err := n.setBehavior(b); err != nil {
		return err
	}
	c.checks.byzantine(protocol.ReplicaID(slices.Index(c.NodeIDs(), id)), b != nil)
	return nil
}

// executed, checkpointed, restored and issued feed the metrics and the
// checkers.
func (c *Cluster) executed(id protocol.ReplicaID, cs []protocol.Committed) {
	for _, x := range cs {
		c.m.batch.Observe(float64(len(x.Batch)))
		c.m.executed.WithLabelValues("requests").Add(float64(len(x.Batch)))
	}
	c.m.executed.WithLabelValues("batches").Add(float64(len(cs)))
	c.m.executedSeq.WithLabelValues(c.nodes[id].Name()).Set(float64(cs[len(cs)-1].Seq))
	c.checks.executed(id, cs)
}

func (c *Cluster) checkpointed(id protocol.ReplicaID, cp protocol.Checkpoint, stable protocol.Seq) {
	c.checks.checkpointed(id, cp, stable)
}

func (c *Cluster) restored(id protocol.ReplicaID, seq protocol.Seq) { c.checks.restored(id, seq) }

func (c *Cluster) issued(r *protocol.Request) { c.checks.issued(r) }

// Summary is the component's part of the status document.
type Summary struct {
	Line     string `json:"line"`
	Up       int    `json:"replicas_up"`
	Replicas int    `json:"replicas"`
	View     uint64 `json:"view"`
	Primary  string `json:"primary"`
	Executed uint64 `json:"executed_seq"`
	Stable   uint64 `json:"stable_checkpoint"`
	// Recovery after the last fault window: seconds to the first commit
	// and to the last pending request, when measured.
	RecoveryCommitSeconds *float64 `json:"recovery_commit_seconds,omitempty"`
	RecoveryDrainSeconds  *float64 `json:"recovery_drain_seconds,omitempty"`
}

// Summary implements components.Summarizer.
func (c *Cluster) Summary() any {
	s := Summary{Replicas: c.n}
	for _, n := range c.nodes {
		if running, st := n.state(); running {
			s.Up++
			if uint64(st.View) >= s.View {
				s.View, s.Primary = uint64(st.View), c.nodes[st.Primary].Name()
			}
			s.Executed = max(s.Executed, uint64(st.LastExecuted))
			s.Stable = max(s.Stable, uint64(st.LowWatermark))
		}
	}
	s.Line = fmt.Sprintf("%d/%d replicas up, view %d (primary %s), executed seq %d, stable checkpoint %d",
		s.Up, s.Replicas, s.View, s.Primary, s.Executed, s.Stable)
	if r := c.checks.recovery(); r.Committed {
		commit := r.Commit.Seconds()
		s.RecoveryCommitSeconds = &commit
		s.Line += fmt.Sprintf("; after the last fault: commit in %.2fs", commit)
		if r.Drained {
			drain := r.Drain.Seconds()
			s.RecoveryDrainSeconds = &drain
			s.Line += fmt.Sprintf(", pending done in %.2fs", drain)
		}
	}
	return s
}
