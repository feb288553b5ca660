package raft

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/nodeproc"
)

// Processes is the raft component with every member a `soakd node` child
// process (components.raft.mode: processes): the same replicated KV store,
// reached over each node's HTTP API, with crash a real SIGKILL of the
// node's process and restart a new process on the node's own state dir.
// The load, the checkers and the faults drive it as they drive Cluster.
//
// With components.raft.mode remote (NewRemote) the nodes are `soakd node`
// processes soakd did not start (pods, at components.raft.addresses): it
// drives and watches them the same way, but cannot crash or restart them,
// and their links are not its fabric's (see ExternalLinks).
type Processes struct {
	log      *slog.Logger
	clock    clockwork.Clock
	bin      string // soakd's own executable
	stateDir string
	linkAddr func(from, to, addr string) (string, error) // nil: peers dial each other directly
	event    func(string, map[string]any)
	client   *http.Client
	nodes    []*procNode

	lifecycle sync.Mutex // Start, Stop, Crash, Restart
	mu        sync.RWMutex
	leader    string // last node known to lead
	started   bool

	clientIDs atomic.Int64
	recorder  atomic.Pointer[recorderBox]
	remote    bool
	// seenLeader is the last leader a status poll found; leaderChanges
	// counts the changes polls saw (one missed between two polls is not).
	seenLeader    string
	leaderChanges atomic.Uint64
}

// procNode is one member; proc is nil while it is down.
type procNode struct {
	id, dir, raftAddr string
	httpAddr          string
	proc              *nodeproc.Proc
}

var (
	_ components.Component      = (*Processes)(nil)
	_ components.Nodes          = (*Processes)(nil)
	_ components.TargetResolver = (*Processes)(nil)
	_ components.KVHistory      = (*Processes)(nil)
	_ components.ProcessTargets = (*Processes)(nil)
	_ components.ExternalLinks  = (*Processes)(nil)
)

// NewProcesses builds the component from deps; nothing runs until Start.
func NewProcesses(deps components.Deps) (*Processes, error) {
	n := MinNodes
	if deps.Config != nil {
		n = deps.Config.Components.Raft.Nodes
	}
	if deps.StateDir == "" {
		return nil, errors.New("raft: empty state dir")
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("raft: processes mode needs soakd's own executable: %w", err)
	}
	p := &Processes{bin: bin, stateDir: deps.StateDir, linkAddr: deps.LinkAddr}
	members, err := nodeproc.Members(deps.StateDir, n)
	if err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	if err := p.init(deps); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("node-%d", i)
		p.nodes = append(p.nodes, &procNode{id: id, dir: filepath.Join(deps.StateDir, id), raftAddr: members[id]})
	}
	return p, nil
}

// init takes what both modes take from deps, and registers the metrics.
func (p *Processes) init(deps components.Deps) error {
	p.log, p.clock, p.event = deps.Logger, deps.Clock, deps.Event
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.clock == nil {
		p.clock = clockwork.NewRealClock()
	}
	if p.event == nil {
		p.event = func(string, map[string]any) {}
	}
	if deps.Metrics != nil {
		if err := deps.Metrics.Register(&procCollector{p: p}); err != nil {
			return fmt.Errorf("raft: register metrics: %w", err)
		}
	}
	return nil
}

// NewRemote builds the component over node processes already running at
// components.raft.addresses (mode remote).
func NewRemote(deps components.Deps) (*Processes, error) {
	if deps.Config == nil || len(deps.Config.Components.Raft.Addresses) == 0 {
		return nil, errors.New("raft: mode remote needs components.raft.addresses")
	}
	p := &Processes{remote: true}
	if err := p.init(deps); err != nil {
		return nil, err
	}
	addrs := deps.Config.Components.Raft.Addresses
	for _, id := range slices.Sorted(maps.Keys(addrs)) {
		p.nodes = append(p.nodes, &procNode{id: id, httpAddr: addrs[id]})
	}
	return p, nil
}

// ExternalLinks implements components.ExternalLinks.
func (p *Processes) ExternalLinks() string {
	if !p.remote {
		return ""
	}
	return "raft's nodes are remote (components.raft.mode remote): their links do not run through soakd, so fault them with faults.backend chaosmesh"
}

// errRemote refuses to crash or restart a node soakd did not start.
func (p *Processes) errRemote(what, id string) error {
	return fmt.Errorf("raft: %s %s: the node is remote (components.raft.mode remote), soakd cannot %s it; use faults.backend chaosmesh (PodChaos) or the node's orchestrator", what, id, what)
}

// Name implements components.Component.
func (p *Processes) Name() string { return "raft" }

// Ops implements components.Component.
func (p *Processes) Ops() []string { return []string{"put", "get", "cas"} }

// NodeIDs implements components.Nodes.
func (p *Processes) NodeIDs() []string {
	ids := make([]string, len(p.nodes))
	for i, n := range p.nodes {
		ids[i] = n.id
	}
	return ids
}

// SetRecorder sets the hook that sees every finished operation.
func (p *Processes) SetRecorder(r Recorder) {
	if r == nil {
		p.recorder.Store(nil)
		return
	}
	p.recorder.Store(&recorderBox{r})
}

func (p *Processes) node(id string) *procNode {
	for _, n := range p.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// Start starts every node process and waits for a leader.
func (p *Processes) Start(ctx context.Context) error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	if p.started {
		return errors.New("raft: already started")
	}
	for _, n := range p.nodes {
		if p.remote {
			break
		}
		if err := p.spawn(n); err != nil {
			p.stopAll(false)
			return err
		}
	}
	p.started = true
	for {
		if _, err := p.findLeader(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if !p.remote {
				p.stopAll(false)
			}
			p.started = false
			return fmt.Errorf("raft: no leader elected among the node processes: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// spawn starts n's process and waits until it serves HTTP.
func (p *Processes) spawn(n *procNode) error {
	var members []nodeproc.Member
	for _, m := range p.nodes {
		members = append(members, nodeproc.Member{ID: m.id, Addr: m.raftAddr})
	}
	// The node dials each peer through the fabric's proxy for the link.
	peers, err := nodeproc.PeerArgs(n.id, members, p.linkAddr)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	args := append([]string{"node", "--component", "raft", "--id", n.id, "--state-dir", n.dir, "--listen", "127.0.0.1:0"}, peers...)
	proc, err := nodeproc.Spawn(p.bin, args, p.log.With("node", n.id), nodeproc.Journal(p.event, "raft", n.id))
	if err != nil {
		return fmt.Errorf("raft: node %s: %w", n.id, err)
	}
	p.mu.Lock()
	n.proc, n.httpAddr = proc, proc.HTTPAddr
	p.mu.Unlock()
	p.log.Info("raft node process started", "node", n.id, "pid", proc.PID(), "http", proc.HTTPAddr, "raft", n.raftAddr)
	return nil
}

// kill ends n's process: SIGKILL when crash, else SIGTERM and, after 5 s,
// SIGKILL.
func (p *Processes) kill(n *procNode, crash bool) error {
	p.mu.Lock()
	proc := n.proc
	n.proc, n.httpAddr = nil, ""
	p.mu.Unlock()
	if proc == nil {
		return fmt.Errorf("raft: %s is not running", n.id)
	}
	proc.Stop(crash)
	return nil
}

func (p *Processes) stopAll(crash bool) {
	for _, n := range p.nodes {
		_ = p.kill(n, crash)
	}
}

// Stop stops every node process gracefully.
func (p *Processes) Stop(context.Context) error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	if !p.started {
		return nil
	}
	p.started = false
	if !p.remote {
		p.stopAll(false)
	}
	p.client.CloseIdleConnections()
	return nil
}

// Crash SIGKILLs node id's process: nothing but what it fsynced survives.
func (p *Processes) Crash(id string) error {
	n := p.node(id)
	if n == nil {
		return fmt.Errorf("raft: crash %q: %w", id, components.ErrNoSuchNode)
	}
	if p.remote {
		return p.errRemote("crash", id)
	}
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	if err := p.kill(n, true); err != nil {
		return err
	}
	p.event("raft_node_crashed", map[string]any{"node": id, "signal": "SIGKILL"})
	return nil
}

// Restart starts node id's process again on its own state dir.
func (p *Processes) Restart(id string) error {
	n := p.node(id)
	if n == nil {
		return fmt.Errorf("raft: restart %q: %w", id, components.ErrNoSuchNode)
	}
	if p.remote {
		return p.errRemote("restart", id)
	}
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	p.mu.RLock()
	running := n.proc != nil
	p.mu.RUnlock()
	if running {
		return fmt.Errorf("raft: restart %s: node is running", id)
	}
	if err := p.spawn(n); err != nil {
		return err
	}
	p.event("raft_node_restarted", map[string]any{"node": id})
	return nil
}

// ProcessTargets implements components.ProcessTargets: every node, with
// the pid and address of its process now (0 and none while it is down).
func (p *Processes) ProcessTargets() []components.ProcessTarget {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]components.ProcessTarget, 0, len(p.nodes))
	for _, n := range p.nodes {
		out = append(out, nodeproc.Target(n.id, !p.remote, n.proc, n.httpAddr))
	}
	return out
}

// statuses asks every running node for its status.
func (p *Processes) statuses(ctx context.Context) map[string]NodeStatus {
	p.mu.RLock()
	addrs := map[string]string{}
	for _, n := range p.nodes {
		if n.httpAddr != "" { // running, or remote
			addrs[n.id] = n.httpAddr
		}
	}
	p.mu.RUnlock()
	out := map[string]NodeStatus{}
	for id, addr := range addrs {
		var st NodeStatus
		if err := p.get(ctx, addr, "/raft/v1/status", &st); err == nil {
			out[id] = st
		}
	}
	return out
}

func (p *Processes) get(ctx context.Context, addr, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// leaderOf is the leader among sts, counted as a change when it differs
// from the last one seen.
func (p *Processes) leaderOf(sts map[string]NodeStatus) string {
	leader := leaderAmong(sts)
	p.mu.Lock()
	if leader != "" && leader != p.seenLeader {
		p.seenLeader = leader
		p.leaderChanges.Add(1)
	}
	p.mu.Unlock()
	return leader
}

// findLeader is the running node that leads with the highest term.
func (p *Processes) findLeader(ctx context.Context) (string, error) {
	leader := p.leaderOf(p.statuses(ctx))
	if leader == "" {
		return "", errors.New("raft: no leader")
	}
	p.mu.Lock()
	p.leader = leader
	p.mu.Unlock()
	return leader, nil
}

// Resolve implements components.TargetResolver, from the nodes' own
// statuses.
func (p *Processes) Resolve(selector string, pick uint64) ([]string, error) {
	sts := p.statuses(context.Background())
	return resolveTarget(selector, pick, p.NodeIDs(), slices.Sorted(maps.Keys(sts)), leaderAmong(sts))
}

// leaderAmong is the node that says it leads with the highest term (a
// deposed leader may not know it yet), or "".
func leaderAmong(sts map[string]NodeStatus) string {
	leader, term := "", uint64(0)
	for id, st := range sts {
		if st.State == hraft.Leader.String() && (leader == "" || st.Term > term) {
			leader, term = id, st.Term
		}
	}
	return leader
}

// Health implements components.Component: healthy when a quorum of node
// processes answers and one of them leads.
func (p *Processes) Health() components.Health {
	sts := p.statuses(context.Background())
	if len(sts) < len(p.nodes)/2+1 {
		return components.Health{Detail: fmt.Sprintf("%d of %d node processes answer: no quorum", len(sts), len(p.nodes))}
	}
	if p.leaderOf(sts) == "" {
		return components.Health{Detail: "no leader among the node processes"}
	}
	return components.Health{Healthy: true}
}

// Do implements components.Component: the op goes to the leader's HTTP
// API, following a follower's redirect. A request that never reached a
// node (no connection) did not apply (failed); one whose answer was lost
// may have (unknown).
func (p *Processes) Do(ctx context.Context, op components.Op) components.Result {
	return recordedDo(ctx, p.clock, &p.clientIDs, &p.recorder, op, func(ctx context.Context, op components.Op) (*reply, components.Result) {
		r := p.exec(ctx, op)
		res := components.Result{Outcome: r.Outcome, Value: r.Value, Swapped: r.Swapped}
		if r.Error != "" {
			res.Err = errors.New(r.Error)
		}
		if r.Outcome != components.OutcomeOK {
			return nil, res
		}
		return &reply{value: r.Value, found: r.Found, swapped: r.Swapped}, res
	})
}

func (p *Processes) exec(ctx context.Context, op components.Op) OpReply {
	body, err := json.Marshal(OpRequest{Op: op.Name, Key: op.Key, Value: op.Value, Expect: op.Expect})
	if err != nil {
		return OpReply{Outcome: components.OutcomeFailed, Error: err.Error()}
	}
	p.mu.RLock()
	target := p.leader
	p.mu.RUnlock()
	last := OpReply{Outcome: components.OutcomeFailed, Error: "raft: no node process answers"}
	backoff := clientBackoffMin
	for attempt := 0; attempt < clientAttempts && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, clientBackoffMax)
		}
		if target == "" {
			if target, err = p.findLeader(ctx); err != nil {
				continue
			}
		}
		n := p.node(target)
		p.mu.RLock()
		addr := ""
		if n != nil {
			addr = n.httpAddr
		}
		p.mu.RUnlock()
		if addr == "" {
			target = ""
			continue
		}
		rep, sent := p.post(ctx, addr, body)
		switch {
		case !sent:
			last, target = rep, ""
			continue
		case rep.Outcome == components.OutcomeFailed && rep.Leader != "" && rep.Leader != target:
			last, target = rep, rep.Leader // follow the redirect
			continue
		case rep.Outcome == components.OutcomeFailed && rep.Error == ErrNotLeaderNode.Error():
			last, target = rep, ""
			continue
		}
		if rep.Outcome == components.OutcomeOK {
			p.mu.Lock()
			p.leader = target
			p.mu.Unlock()
		}
		return rep
	}
	if last.Outcome == "" {
		last.Outcome = components.OutcomeFailed
	}
	return last
}

// post sends one op; sent is false when it certainly never reached the
// node (the connection failed), so it did not apply.
func (p *Processes) post(ctx context.Context, addr string, body []byte) (rep OpReply, sent bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/raft/v1/op", bytes.NewReader(body))
	if err != nil {
		return OpReply{Outcome: components.OutcomeFailed, Error: err.Error()}, false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return OpReply{Outcome: components.OutcomeFailed, Error: err.Error()}, false
		}
		return OpReply{Outcome: components.OutcomeUnknown, Error: err.Error()}, true
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return OpReply{Outcome: components.OutcomeFailed, Error: fmt.Sprintf("raft node: %s: %s", resp.Status, bytes.TrimSpace(b))}, true
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep); err != nil {
		return OpReply{Outcome: components.OutcomeUnknown, Error: "raft node: unreadable answer: " + err.Error()}, true
	}
	return rep, true
}

// procCollector reads the node processes' statuses at scrape time: the
// in-process cluster's series (collector), from each node's status, and
// the highest term.
type procCollector struct{ p *Processes }

var descTerm = prometheus.NewDesc("soakd_raft_term",
	"Highest Raft term among the running nodes: it rises with every election (processes mode).", nil, nil)

// Describe implements prometheus.Collector.
func (m *procCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeaderChanges, descCommitIndex, descAppliedIndex, descApplyLag, descSnapshots, descLogBytes, descNodesUp, descTerm} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *procCollector) Collect(ch chan<- prometheus.Metric) {
	sts := m.p.statuses(context.Background())
	m.p.leaderOf(sts)
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(m.p.leaderChanges.Load()))
	var term uint64
	for id, st := range sts {
		lag := 0.0
		if st.CommitIndex > st.AppliedIndex {
			lag = float64(st.CommitIndex - st.AppliedIndex)
		}
		ch <- prometheus.MustNewConstMetric(descCommitIndex, prometheus.GaugeValue, float64(st.CommitIndex), id)
		ch <- prometheus.MustNewConstMetric(descAppliedIndex, prometheus.GaugeValue, float64(st.AppliedIndex), id)
		ch <- prometheus.MustNewConstMetric(descApplyLag, prometheus.GaugeValue, lag, id)
		// Per process: a restarted node's count starts again, which
		// Prometheus reads as a counter reset.
		ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(st.Snapshots), id)
		ch <- prometheus.MustNewConstMetric(descLogBytes, prometheus.GaugeValue, float64(st.LogBytes), id)
		term = max(term, st.Term)
	}
	ch <- prometheus.MustNewConstMetric(descNodesUp, prometheus.GaugeValue, float64(len(sts)))
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(term))
}
