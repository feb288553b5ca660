package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

// Timing, tuned for in-process nodes on loopback (hashicorp's defaults of
// 1 s / 1 s / 500 ms target LANs). Lower values make failover, and thus the
// tests, faster; below ~4 fsync+RTT times they would cause spurious
// elections under -race on a 2-core machine.
const (
	// heartbeatTimeout: a follower with no contact from the leader for this
	// long starts an election.
	heartbeatTimeout = 500 * time.Millisecond
	// electionTimeout: a candidate with no result for this long retries.
	electionTimeout = 500 * time.Millisecond
	// leaderLeaseTimeout: a leader that cannot reach a quorum for this long
	// steps down (must be <= heartbeatTimeout).
	leaderLeaseTimeout = 250 * time.Millisecond
)

// Log compaction. hashicorp/raft checks every SnapshotInterval (randomised
// to [1x, 2x)) whether SnapshotThreshold entries accumulated since the last
// snapshot; if so it snapshots the FSM and truncates the log to the last
// TrailingLogs entries. The live log is therefore at most
//
//	TrailingLogs + SnapshotThreshold + rate * 2 * SnapshotInterval
//
// entries: at the default 500 ops/s that is 1024 + 8192 + 10000 ≈ 19k
// entries of ~50–200 bytes, a few MiB per node, forever; bbolt reuses freed
// pages so the file plateaus. A snapshot is the whole map (bounded by the key
// space), taken every ~16 s at 500 ops/s. TrailingLogs of 1024 (~2 s of
// load) keeps the log short; a follower down for longer catches up by
// snapshot install, which the crash faults then exercise too.
const (
	snapshotThreshold = 8192
	trailingLogs      = 1024
	snapshotInterval  = 10 * time.Second
	// snapshotRetain is how many snapshots each node keeps on disk.
	snapshotRetain = 2
	// logCacheSize bounds the in-memory cache of recent log entries.
	logCacheSize = 512
	// boltOpenTimeout bounds waiting for the bbolt file lock on restart.
	boltOpenTimeout = 2 * time.Second
	logStoreFile    = "raft.db"
)

// MinNodes and MaxNodes bound components.raft.nodes.
const (
	MinNodes = 3
	MaxNodes = 7
)

// options are knobs tests lower to force compaction quickly.
type options struct {
	snapshotThreshold uint64
	trailingLogs      uint64
	snapshotInterval  time.Duration
}

func defaultOptions() options {
	return options{snapshotThreshold: snapshotThreshold, trailingLogs: trailingLogs, snapshotInterval: snapshotInterval}
}

// Cluster is the raft component: N in-process hashicorp/raft nodes serving
// a replicated KV store. It implements components.Component and
// components.Nodes.
type Cluster struct {
	log      *slog.Logger
	clock    clockwork.Clock
	dial     components.Dialer
	event    func(string, map[string]any)
	stateDir string
	maxKeys  int
	opts     options
	nodes    []*node // fixed at New, ordered node-1..node-N

	// lifecycle serialises Start, Stop, Crash and Restart.
	lifecycle sync.Mutex
	// mu guards every node's inst and the addrs map.
	mu      sync.RWMutex
	addrs   map[string]string // address -> node id
	started bool

	leaderChanges atomic.Uint64
	clientIDs     atomic.Int64
	recorder      atomic.Pointer[recorderBox]
	labels        context.Context // pprof labels component=raft
	// loseWritesEvery plants a bug for tests: when n > 0, every put at a
	// log index divisible by n is acknowledged but not applied, on every
	// replica alike, so the checker must catch it end to end. Zero in
	// production; nothing outside tests sets it.
	loseWritesEvery atomic.Uint64
}

// node is one member; inst is nil while the node is down.
type node struct {
	id        string
	dir       string
	snapshots atomic.Uint64
	inst      *instance
}

// instance is one incarnation of a node: everything a crash throws away.
type instance struct {
	id       string
	stopped  chan struct{} // closed after Shutdown: see bindShutdown
	raft     *hraft.Raft
	fsm      *fsm
	trans    *hraft.NetworkTransport
	stream   *streamLayer
	store    *raftboltdb.BoltStore
	observer *hraft.Observer
}

var (
	_ components.Component = (*Cluster)(nil)
	_ components.Nodes     = (*Cluster)(nil)
)

// New is the raft components.Factory: the nodes in soakd's process, or,
// with components.raft.mode processes, each a child process.
func New(deps components.Deps) (components.Component, error) {
	if deps.Config != nil {
		switch deps.Config.Components.Raft.Mode {
		case config.ModeProcesses:
			return NewProcesses(deps)
		case config.ModeRemote:
			return NewRemote(deps)
		}
	}
	return newCluster(deps, defaultOptions())
}

func newCluster(deps components.Deps, opts options) (*Cluster, error) {
	n, keys := MinNodes, 0
	if deps.Config != nil {
		n = deps.Config.Components.Raft.Nodes
		keys = deps.Config.Load.Raft.Keys
	}
	if n < MinNodes || n > MaxNodes {
		return nil, fmt.Errorf("raft: components.raft.nodes: must be %d..%d, got %d", MinNodes, MaxNodes, n)
	}
	if deps.StateDir == "" {
		return nil, errors.New("raft: empty state dir")
	}
	if keys <= 0 {
		keys = DefaultMaxKeys
	}
	c := &Cluster{
		log:      deps.Logger,
		clock:    deps.Clock,
		dial:     deps.Dial,
		event:    deps.Event,
		stateDir: deps.StateDir,
		maxKeys:  keys,
		opts:     opts,
		addrs:    make(map[string]string),
		labels:   pprof.WithLabels(context.Background(), pprof.Labels("component", "raft", "stage", "component/raft")),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = clockwork.NewRealClock()
	}
	if c.dial == nil {
		c.dial = components.DirectDialer
	}
	if c.event == nil {
		c.event = func(string, map[string]any) {}
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("node-%d", i)
		c.nodes = append(c.nodes, &node{id: id, dir: filepath.Join(deps.StateDir, id)})
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := reg.Register(&collector{c: c}); err != nil {
		return nil, fmt.Errorf("raft: register metrics: %w", err)
	}
	return c, nil
}

// Name implements components.Component.
func (c *Cluster) Name() string { return "raft" }

// Ops implements components.Component.
func (c *Cluster) Ops() []string { return []string{"put", "get", "cas"} }

// NodeIDs implements components.Nodes.
func (c *Cluster) NodeIDs() []string {
	ids := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		ids[i] = n.id
	}
	return ids
}

func (c *Cluster) node(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// Start brings every node up (bootstrapping a new cluster, or recovering
// each node from its disk) and waits, bounded by ctx, for a leader.
func (c *Cluster) Start(ctx context.Context) error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if c.started {
		return errors.New("raft: already started")
	}
	var err error
	pprof.Do(ctx, pprof.Labels("component", "raft", "stage", "component/raft"), func(context.Context) { err = c.start() })
	if err != nil {
		return err
	}
	c.started = true
	if err := c.waitLeader(ctx); err != nil {
		c.stopAll(false)
		c.started = false
		return err
	}
	return nil
}

func (c *Cluster) start() error {
	// Bind every node's (persisted) address first: the bootstrap
	// configuration and the address map need them all.
	lns := make(map[string]*streamLayer, len(c.nodes))
	closeAll := func() {
		for _, s := range lns {
			_ = s.Close()
		}
	}
	addrs := make(map[string]string, len(c.nodes))
	for _, n := range c.nodes {
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			closeAll()
			return fmt.Errorf("raft: %w", err)
		}
		ln, err := listen(n.dir)
		if err != nil {
			closeAll()
			return fmt.Errorf("raft: %s: %w", n.id, err)
		}
		addrs[ln.Addr().String()] = n.id
		lns[n.id] = newStreamLayer(ln, n.id, c.dial, c.resolve)
	}
	c.mu.Lock()
	c.addrs = addrs
	c.mu.Unlock()

	// Bootstrap only a brand-new cluster: if any node has state, the
	// others (even empty ones) are caught up by the leader.
	stores := make(map[string]*raftboltdb.BoltStore, len(c.nodes))
	snaps := make(map[string]hraft.SnapshotStore, len(c.nodes))
	closeStores := func() {
		for _, s := range stores {
			_ = s.Close()
		}
	}
	anyState := false
	for _, n := range c.nodes {
		store, snap, err := c.openStores(n)
		if err != nil {
			closeStores()
			closeAll()
			return err
		}
		stores[n.id], snaps[n.id] = store, snap
		has, err := hraft.HasExistingState(store, store, snap)
		if err != nil {
			closeStores()
			closeAll()
			return fmt.Errorf("raft: %s: %w", n.id, err)
		}
		anyState = anyState || has
	}
	if !anyState {
		var servers []hraft.Server
		for _, n := range c.nodes {
			servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(n.id), Address: hraft.ServerAddress(lns[n.id].Addr().String())})
		}
		for _, n := range c.nodes {
			if err := hraft.BootstrapCluster(c.raftConfig(n.id), stores[n.id], stores[n.id], snaps[n.id], c.bootstrapTransport(lns[n.id]), hraft.Configuration{Servers: servers}); err != nil {
				closeStores()
				closeAll()
				return fmt.Errorf("raft: bootstrap %s: %w", n.id, err)
			}
		}
		c.event("raft_bootstrapped", map[string]any{"nodes": len(c.nodes)})
	}
	for i, n := range c.nodes {
		inst, err := c.startInstance(n, lns[n.id], stores[n.id], snaps[n.id])
		if err != nil {
			for _, m := range c.nodes[i:] {
				_ = stores[m.id].Close()
				_ = lns[m.id].Close()
			}
			c.stopAll(false)
			return err
		}
		c.mu.Lock()
		n.inst = inst
		c.mu.Unlock()
	}
	return nil
}

// bootstrapTransport gives BootstrapCluster the node's address; it only
// reads LocalAddr.
func (c *Cluster) bootstrapTransport(s *streamLayer) hraft.Transport {
	_, t := hraft.NewInmemTransport(hraft.ServerAddress(s.Addr().String()))
	return t
}

func (c *Cluster) resolve(addr string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if id, ok := c.addrs[addr]; ok {
		return id
	}
	return addr
}

func (c *Cluster) openStores(n *node) (*raftboltdb.BoltStore, hraft.SnapshotStore, error) {
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(n.dir, logStoreFile),
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("raft: %s: open log store: %w", n.id, err)
	}
	snap, err := hraft.NewFileSnapshotStoreWithLogger(n.dir, snapshotRetain, c.hclog(n.id))
	if err != nil {
		_ = store.Close()
		return nil, nil, fmt.Errorf("raft: %s: open snapshot store: %w", n.id, err)
	}
	return store, snap, nil
}

func (c *Cluster) raftConfig(id string) *hraft.Config {
	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(id)
	conf.HeartbeatTimeout = heartbeatTimeout
	conf.ElectionTimeout = electionTimeout
	conf.LeaderLeaseTimeout = leaderLeaseTimeout
	conf.SnapshotThreshold = c.opts.snapshotThreshold
	conf.TrailingLogs = c.opts.trailingLogs
	conf.SnapshotInterval = c.opts.snapshotInterval
	conf.Logger = c.hclog(id)
	return conf
}

func (c *Cluster) startInstance(n *node, stream *streamLayer, store *raftboltdb.BoltStore, snap hraft.SnapshotStore) (*instance, error) {
	inst := &instance{id: n.id, stopped: make(chan struct{}), fsm: newFSM(c.maxKeys, &n.snapshots, &c.loseWritesEvery),
		stream: stream, store: store}
	inst.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  c.hclog(n.id),
	})
	logs, err := hraft.NewLogCache(logCacheSize, store)
	if err != nil {
		_ = inst.trans.Close()
		_ = stream.Close()
		_ = store.Close()
		return nil, fmt.Errorf("raft: %s: %w", n.id, err)
	}
	r, err := hraft.NewRaft(c.raftConfig(n.id), inst.fsm, logs, store, snap, inst.trans)
	if err != nil {
		_ = inst.trans.Close()
		_ = stream.Close()
		_ = store.Close()
		return nil, fmt.Errorf("raft: %s: %w", n.id, err)
	}
	inst.raft = r
	// Count leadership acquisitions: the filter runs synchronously in
	// raft's goroutine and never forwards, so no channel or goroutine.
	self := hraft.ServerID(n.id)
	inst.observer = hraft.NewObserver(nil, false, func(o *hraft.Observation) bool {
		if lo, ok := o.Data.(hraft.LeaderObservation); ok && lo.LeaderID == self {
			c.leaderChanges.Add(1)
		}
		return false
	})
	r.RegisterObserver(inst.observer)
	return inst, nil
}

// shutdown takes an instance down. crash cuts the network first (peers see
// the node die mid-stream, as with kill -9), then stops raft; raft never
// snapshots on shutdown, so in both cases only what was fsynced survives.
// A graceful stop lets raft finish its loops before the sockets go.
func (inst *instance) shutdown(crash bool) error {
	var errs []error
	if crash {
		_ = inst.stream.Close()
		_ = inst.trans.Close()
	}
	inst.raft.DeregisterObserver(inst.observer)
	if err := inst.raft.Shutdown().Error(); err != nil {
		errs = append(errs, err)
	}
	close(inst.stopped) // waiters on futures Shutdown left unresolved end now
	if !crash {
		_ = inst.trans.Close()
		_ = inst.stream.Close()
	}
	if err := inst.store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Stop shuts every node down and leaves no goroutines behind.
func (c *Cluster) Stop(ctx context.Context) error {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if !c.started {
		return nil
	}
	c.started = false
	done := make(chan error, 1)
	go func() { done <- c.stopAll(false) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("raft: stop: %w", ctx.Err())
	}
}

func (c *Cluster) stopAll(crash bool) error {
	var errs []error
	for _, n := range c.nodes {
		c.mu.Lock()
		inst := n.inst
		n.inst = nil
		c.mu.Unlock()
		if inst != nil {
			if err := inst.shutdown(crash); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Crash stops a node abruptly: its sockets are cut, raft is stopped with no
// leadership transfer and no snapshot, and its in-memory FSM is dropped.
func (c *Cluster) Crash(id string) error {
	n := c.node(id)
	if n == nil {
		return fmt.Errorf("raft: crash %q: %w", id, components.ErrNoSuchNode)
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	c.mu.Lock()
	inst := n.inst
	n.inst = nil
	c.mu.Unlock()
	if inst == nil {
		return fmt.Errorf("raft: crash %s: node is not running", id)
	}
	err := inst.shutdown(true)
	c.event("raft_node_crashed", map[string]any{"node": id})
	return err
}

// Restart recovers a crashed node from its own disk (snapshot plus log),
// on its old address and server ID, and rejoins it.
func (c *Cluster) Restart(id string) error {
	n := c.node(id)
	if n == nil {
		return fmt.Errorf("raft: restart %q: %w", id, components.ErrNoSuchNode)
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if !c.started {
		return errors.New("raft: restart: cluster not started")
	}
	c.mu.RLock()
	running := n.inst != nil
	c.mu.RUnlock()
	if running {
		return fmt.Errorf("raft: restart %s: node is running", id)
	}
	var err error
	pprof.Do(context.Background(), pprof.Labels("component", "raft", "stage", "component/raft"), func(context.Context) {
		l, lerr := listen(n.dir)
		if lerr != nil {
			err = fmt.Errorf("raft: restart %s: %w", id, lerr)
			return
		}
		store, snap, serr := c.openStores(n)
		if serr != nil {
			_ = l.Close()
			err = serr
			return
		}
		inst, ierr := c.startInstance(n, newStreamLayer(l, n.id, c.dial, c.resolve), store, snap)
		if ierr != nil {
			err = ierr
			return
		}
		c.mu.Lock()
		n.inst = inst
		c.mu.Unlock()
	})
	if err == nil {
		c.event("raft_node_restarted", map[string]any{"node": id})
	}
	return err
}

// Health implements components.Component: healthy when a quorum of nodes
// runs and one of them is the leader.
func (c *Cluster) Health() components.Health {
	c.mu.RLock()
	defer c.mu.RUnlock()
	up, leader := 0, ""
	var down []string
	for _, n := range c.nodes {
		if n.inst == nil {
			down = append(down, n.id)
			continue
		}
		up++
		if n.inst.raft.State() == hraft.Leader {
			leader = n.id
		}
	}
	quorum := len(c.nodes)/2 + 1
	switch {
	case up < quorum:
		return components.Health{Detail: fmt.Sprintf("%d of %d nodes up, quorum is %d (down: %s)", up, len(c.nodes), quorum, strings.Join(down, ","))}
	case leader == "":
		return components.Health{Detail: fmt.Sprintf("no leader (%d of %d nodes up)", up, len(c.nodes))}
	}
	return components.Health{Healthy: true}
}

// waitLeader polls until some running node is leader, bounded by ctx.
func (c *Cluster) waitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if inst := c.leader(""); inst != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raft: no leader elected: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// leader returns the running instance to send commands to: the hinted node
// if it runs and claims leadership, else the self-proclaimed leader with the
// highest term (a partitioned old leader may still think it leads until its
// lease runs out; it then fails the command with ErrLeadershipLost or
// ErrNotLeader, which the client classifies).
func (c *Cluster) leader(hint string) *instance {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best *instance
	var bestTerm uint64
	for _, n := range c.nodes {
		inst := n.inst
		if inst == nil || inst.raft.State() != hraft.Leader {
			continue
		}
		if n.id == hint {
			return inst
		}
		if t := inst.raft.CurrentTerm(); best == nil || t > bestTerm {
			best, bestTerm = inst, t
		}
	}
	if best != nil {
		return best
	}
	// Nobody claims leadership locally visible; follow a redirect.
	for _, n := range c.nodes {
		if n.inst == nil {
			continue
		}
		if _, id := n.inst.raft.LeaderWithID(); id != "" {
			if m := c.node(string(id)); m != nil && m.inst != nil {
				return m.inst
			}
		}
	}
	return nil
}

// hclog builds a hashicorp logger for one node: warnings and errors go to
// the run's slog logger, the rest is dropped.
func (c *Cluster) hclog(id string) hclog.Logger {
	if c.log.Handler() == slog.DiscardHandler {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft." + id,
		Level:  hclog.Warn,
		Output: slogWriter{c.log},
	})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimSpace(string(p)), "component", "raft")
	return len(p), nil
}

var _ io.Writer = slogWriter{}

// Spec registers the raft component: enabled by components.raft, driven by
// load.raft.
func Spec() components.Spec {
	return components.Spec{
		Name:    "raft",
		Factory: New,
		Enabled: func(c *config.Config) bool { return c.Components.Raft.Enabled },
		Load:    func(c *config.Config) (config.RateLoad, bool) { return c.Load.Raft, true },
		Targets: []components.Target{{Role: components.RoleLeader, Selector: "leader"},
			{Role: components.RoleFollower, Selector: "follower"}, {Role: components.RoleMinority, Selector: "minority"}},
	}
}
