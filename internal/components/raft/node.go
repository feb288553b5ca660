package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components"
)

// NodeOptions configure one member of a cluster whose members run as
// separate processes (soakd node): the same FSM, log store, snapshots and
// transport as Cluster's nodes, with its peers at network addresses.
type NodeOptions struct {
	ID  string // this node's id, a key of Peers
	Dir string // its state dir: log store, snapshots, its address
	// Peers is every member's id -> Raft address (host:port), this node's
	// included. Every member must be given the same map: a brand-new node
	// bootstraps the cluster with it (hashicorp/raft allows every member to
	// bootstrap with the identical configuration).
	Peers   map[string]string
	MaxKeys int // bound of the key space; 0: DefaultMaxKeys
	Logger  *slog.Logger
	Metrics prometheus.Registerer // nil: not exported
	Dial    components.Dialer     // nil: direct
}

// Node is one Raft member run as its own process. It answers ops only as
// leader; a follower refuses them (outcome failed, nothing applied) and
// names the leader, so the client retries there.
type Node struct {
	c *Cluster
	n *node
}

// StartNode opens (or creates) the node's state in o.Dir, binds its Raft
// address, bootstraps a brand-new cluster and starts the node. A node
// keeps its address for life: a different address for a state dir that
// has one is refused.
func StartNode(o NodeOptions) (*Node, error) {
	addr, ok := o.Peers[o.ID]
	switch {
	case o.ID == "" || !ok:
		return nil, fmt.Errorf("raft node: id %q is not among the peers %v", o.ID, slices.Sorted(maps.Keys(o.Peers)))
	case len(o.Peers) < MinNodes || len(o.Peers) > MaxNodes:
		return nil, fmt.Errorf("raft node: %d peers, want %d..%d", len(o.Peers), MinNodes, MaxNodes)
	case o.Dir == "":
		return nil, errors.New("raft node: empty state dir")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dial == nil {
		o.Dial = components.DirectDialer
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	c := &Cluster{log: o.Logger, clock: clockwork.NewRealClock(), dial: o.Dial, event: func(string, map[string]any) {},
		stateDir: o.Dir, maxKeys: o.MaxKeys, opts: defaultOptions(), addrs: map[string]string{},
		labels: pprof.WithLabels(context.Background(), pprof.Labels("component", "raft", "stage", "component/raft"))}
	for id, a := range o.Peers {
		c.addrs[a] = id
	}
	n := &node{id: o.ID, dir: o.Dir}
	c.nodes = []*node{n}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft node: %w", err)
	}
	if err := keepAddress(o.Dir, addr); err != nil {
		return nil, err
	}
	ln, err := listen(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("raft node %s: %w", o.ID, err)
	}
	stream := newStreamLayer(ln, o.ID, c.dial, c.resolve)
	store, snap, err := c.openStores(n)
	if err != nil {
		_ = stream.Close()
		return nil, err
	}
	has, err := hraft.HasExistingState(store, store, snap)
	if err == nil && !has {
		var servers []hraft.Server
		for _, id := range slices.Sorted(maps.Keys(o.Peers)) {
			servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(id), Address: hraft.ServerAddress(o.Peers[id])})
		}
		err = hraft.BootstrapCluster(c.raftConfig(o.ID), store, store, snap, c.bootstrapTransport(stream), hraft.Configuration{Servers: servers})
	}
	if err != nil {
		_ = store.Close()
		_ = stream.Close()
		return nil, fmt.Errorf("raft node %s: bootstrap: %w", o.ID, err)
	}
	inst, err := c.startInstance(n, stream, store, snap)
	if err != nil {
		return nil, err
	}
	n.inst = inst
	c.started = true
	if o.Metrics != nil {
		if err := o.Metrics.Register(&collector{c: c}); err != nil {
			_ = inst.shutdown(false)
			return nil, fmt.Errorf("raft node: register metrics: %w", err)
		}
	}
	return &Node{c: c, n: n}, nil
}

// keepAddress records addr as the node's address on first start and
// refuses another one later.
func keepAddress(dir, addr string) error {
	path := filepath.Join(dir, addrFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return writeFileAtomic(path, []byte(addr+"\n"))
	case err != nil:
		return fmt.Errorf("raft node: %w", err)
	}
	if had := strings.TrimSpace(string(b)); had != addr {
		return fmt.Errorf("raft node: %s holds address %s, not %s: a node keeps its address for life (it is in every peer's log)", dir, had, addr)
	}
	return nil
}

// Close stops the node gracefully.
func (nd *Node) Close() error { return nd.c.Stop(context.Background()) }

// NodeStatus is what GET /raft/v1/status answers.
type NodeStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string `json:"leader,omitempty"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// Snapshots counts the snapshots this process took; LogBytes is the
	// size of its log store file.
	Snapshots uint64 `json:"snapshots"`
	LogBytes  int64  `json:"log_bytes"`
}

// Status reports the node's Raft state.
func (nd *Node) Status() NodeStatus {
	nd.c.mu.RLock()
	inst := nd.n.inst
	nd.c.mu.RUnlock()
	if inst == nil {
		return NodeStatus{ID: nd.n.id, State: hraft.Shutdown.String()}
	}
	_, leader := inst.raft.LeaderWithID()
	st := NodeStatus{ID: nd.n.id, State: inst.raft.State().String(), Leader: string(leader), Term: inst.raft.CurrentTerm(),
		AppliedIndex: inst.fsm.appliedIndex(), LastIndex: inst.raft.LastIndex(), CommitIndex: inst.raft.CommitIndex(),
		Snapshots: nd.n.snapshots.Load()}
	if fi, err := os.Stat(filepath.Join(nd.n.dir, logStoreFile)); err == nil {
		st.LogBytes = fi.Size()
	}
	return st
}

// OpRequest is the body of POST /raft/v1/op.
type OpRequest struct {
	Op     string `json:"op"` // put, get, cas
	Key    string `json:"key"`
	Value  []byte `json:"value,omitempty"`
	Expect []byte `json:"expect,omitempty"`
}

// OpReply is its answer. Outcome failed means the op was not applied (a
// follower names the leader in Leader); unknown means it may have been.
type OpReply struct {
	Outcome components.Outcome `json:"outcome"`
	Value   []byte             `json:"value,omitempty"`
	Found   bool               `json:"found,omitempty"` // the key existed before the op
	Swapped bool               `json:"swapped,omitempty"`
	Error   string             `json:"error,omitempty"`
	Leader  string             `json:"leader,omitempty"`
}

// ErrNotLeaderNode is a follower's answer to an op.
var ErrNotLeaderNode = errors.New("raft node: not the leader")

// Do applies op if this node leads; a follower fails it at once.
func (nd *Node) Do(ctx context.Context, op components.Op) OpReply {
	st := nd.Status()
	if st.State != hraft.Leader.String() {
		return OpReply{Outcome: components.OutcomeFailed, Error: ErrNotLeaderNode.Error(), Leader: st.Leader}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, components.DefaultOpTimeout)
		defer cancel()
	}
	rep, res := nd.c.exec(ctx, op)
	r := OpReply{Outcome: res.Outcome, Value: res.Value, Swapped: res.Swapped}
	if rep != nil {
		r.Value, r.Found = rep.value, rep.found
	}
	if res.Err != nil {
		r.Error = res.Err.Error()
	}
	if res.Outcome == components.OutcomeFailed {
		r.Leader = nd.Status().Leader
	}
	return r
}

// maxOpBody bounds an op request: a key, a value and an expect at their
// limits, JSON-encoded.
const maxOpBody = 4 * (MaxKeyBytes + 2*MaxValueBytes)

// Handler serves the node's API: POST /raft/v1/op, GET /raft/v1/status.
func (nd *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /raft/v1/op", func(w http.ResponseWriter, r *http.Request) {
		var req OpRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxOpBody)).Decode(&req); err != nil {
			http.Error(w, "raft node: bad op request: "+err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		writeJSON(w, nd.Do(ctx, components.Op{Name: req.Op, Key: req.Key, Value: req.Value, Expect: req.Expect}))
	})
	mux.HandleFunc("GET /raft/v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, nd.Status()) })
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
