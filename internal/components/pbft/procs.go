package pbft

import (
	"bufio"
	"context"
	"encoding/gob"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/nodeproc"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
	"github.com/soakd/soakd/internal/config"
)

const (
	// rewatchAfter is the wait before watching a replica's events again
	// after its stream broke.
	rewatchAfter = 200 * time.Millisecond
	// startWait bounds the wait for a replica's first status.
	startWait = 30 * time.Second
	// adminTimeout bounds one call to a replica process's API.
	adminTimeout = 5 * time.Second
)

// procReplica is a replica that is a `soakd node --component pbft`
// process: one soakd started (mode processes) or found at an address
// (mode remote). Clients' requests go to its protocol address, as its
// peers' messages do; what it executes, checkpoints, restores and answers
// comes back on its event stream (Host) and feeds the Cluster's clients
// and checkers as an in-process replica's does.
type procReplica struct {
	c      *Cluster
	id     protocol.ReplicaID
	name   string
	dir    string
	remote bool
	client *peer // requests to the replica, opened once

	mu       sync.Mutex
	proc     *nodeproc.Proc // mode processes, while it runs
	httpAddr string
	addr     string // its protocol address
	watching bool   // its event stream is up
	status   protocol.Status
	counts   map[string]float64 // the process's last reported counters
	dropped  uint64             // the events it last said it dropped
	unwatch  context.CancelFunc
	watched  chan struct{}
}

var (
	_ replica                   = (*procReplica)(nil)
	_ components.ProcessTargets = (*Cluster)(nil)
	_ components.ExternalLinks  = (*Cluster)(nil)
)

// newProcReplicas makes the Cluster's members node processes: spawned on
// fixed loopback addresses (chosen once per run) in mode processes, or
// reached at components.pbft.addresses in mode remote.
func (c *Cluster) newProcReplicas(pc config.PBFTComponent) error {
	c.procMode = pc.Mode
	c.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var members map[string]string
	if pc.Mode == config.ModeProcesses {
		var err error
		if c.bin, err = os.Executable(); err != nil {
			return fmt.Errorf("pbft: processes mode needs soakd's own executable: %w", err)
		}
		if members, err = nodeproc.Members(c.stateDir, c.n); err != nil {
			return fmt.Errorf("pbft: %w", err)
		}
	} else if len(pc.Addresses) != c.n {
		return fmt.Errorf("pbft: mode remote needs components.pbft.addresses, one per replica (%d)", c.n)
	}
	for i := range c.n {
		r := &procReplica{c: c, id: protocol.ReplicaID(i), name: replicaName(i), remote: pc.Mode == config.ModeRemote}
		r.dir = filepath.Join(c.stateDir, r.name)
		if r.remote {
			r.httpAddr = pc.Addresses[r.name]
		} else {
			r.addr = members[r.name]
		}
		r.client = newPeer("client", r.name, r.listenAddr, components.DirectDialer, c.m.dropped.WithLabelValues("queue-full").Inc)
		c.nodes = append(c.nodes, r)
	}
	return nil
}

func (r *procReplica) Name() string     { return r.name }
func (r *procReplica) stateDir() string { return r.dir }

func (r *procReplica) listenAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.watching && r.proc == nil {
		return ""
	}
	return r.addr
}

// state: a replica process runs while it has not exited (mode
// processes), a remote one while soakd follows its events.
func (r *procReplica) state() (bool, protocol.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remote {
		return r.watching, r.status
	}
	return r.proc.Alive() && r.watched != nil, r.status
}

// start starts the replica's process (mode processes) and watches its
// events until its first status comes.
func (r *procReplica) start() error {
	r.stop(false) // what is left of an earlier start: its watcher, a process that died
	if !r.remote {
		if err := r.spawn(); err != nil {
			return err
		}
		r.counts, r.dropped = nil, 0 // a new process counts from zero
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	r.mu.Lock()
	r.unwatch, r.watched = cancel, watched
	r.mu.Unlock()
	go func() {
		defer close(watched)
		r.watch(ctx)
	}()
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		watching := r.watching
		r.mu.Unlock()
		if watching {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.stop(false)
	return fmt.Errorf("pbft: replica %s at %s sent no status within %s", r.name, r.httpAddr, startWait)
}

func (r *procReplica) spawn() error {
	c := r.c
	var members []nodeproc.Member
	for _, n := range c.nodes {
		members = append(members, nodeproc.Member{ID: n.Name(), Addr: n.(*procReplica).addr})
	}
	// The replica dials each peer through the fabric's proxy for the link.
	peers, err := nodeproc.PeerArgs(r.name, members, c.linkAddr)
	if err != nil {
		return fmt.Errorf("pbft: %w", err)
	}
	args := append([]string{"node", "--component", "pbft", "--id", r.name, "--state-dir", r.dir, "--listen", "127.0.0.1:0",
		"--seed", strconv.FormatUint(c.seed, 10), "--max-keys", strconv.Itoa(c.maxKeys)}, peers...)
	proc, err := nodeproc.Spawn(c.bin, args, c.log.With("node", r.name), nodeproc.Journal(c.event, "pbft", r.name))
	if err != nil {
		return fmt.Errorf("pbft: replica %s: %w", r.name, err)
	}
	r.mu.Lock()
	r.proc, r.httpAddr = proc, proc.HTTPAddr
	r.mu.Unlock()
	c.log.Info("pbft replica process started", "node", r.name, "pid", proc.PID(), "http", proc.HTTPAddr, "addr", r.addr)
	return nil
}

// stop stops watching the replica and, in mode processes, ends its
// process: SIGKILL when crash.
func (r *procReplica) stop(crash bool) {
	r.mu.Lock()
	unwatch, watched, proc := r.unwatch, r.watched, r.proc
	r.unwatch, r.watched, r.proc = nil, nil, nil
	if !r.remote {
		r.httpAddr = ""
	}
	r.mu.Unlock()
	if unwatch != nil {
		unwatch()
		<-watched
	}
	if proc != nil {
		proc.Stop(crash)
	}
}

// close releases the client link for good (the Cluster stops).
func (r *procReplica) close() { r.client.close() }

// watch follows the replica's event stream until ctx ends, again after
// every break.
func (r *procReplica) watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.follow(ctx)
		r.mu.Lock()
		r.watching = false
		r.mu.Unlock()
		if ctx.Err() == nil {
			r.c.log.Debug("pbft replica's event stream broke", "node", r.name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(rewatchAfter):
		}
	}
}

func (r *procReplica) follow(ctx context.Context) error {
	if r.remote {
		var st HostStatus
		if err := r.call(ctx, http.MethodGet, "/pbft/v1/status", nil, &st); err != nil {
			return err
		}
		r.mu.Lock()
		r.addr = st.Addr // where the pod's replica listens
		r.mu.Unlock()
	}
	r.mu.Lock()
	url := "http://" + r.httpAddr + "/pbft/v1/events"
	r.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := r.c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	dec := gob.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var e Event
		if err := dec.Decode(&e); err != nil {
			return err
		}
		r.dispatch(e)
	}
}

// dispatch hands one event to the Cluster, as the replica's loop does in
// process.
func (r *procReplica) dispatch(e Event) {
	c := r.c
	if e.Restored != nil {
		c.restored(r.id, *e.Restored)
	}
	if len(e.Executed) > 0 {
		c.executed(r.id, e.Executed)
	}
	if e.Checkpoint != nil {
		c.checkpointed(r.id, *e.Checkpoint, 0)
	}
	if e.Stable > 0 {
		c.checkpointed(r.id, protocol.Checkpoint{}, e.Stable)
	}
	if len(e.Reply) > 0 {
		m, err := wire.Decode(e.Reply)
		switch {
		case err != nil:
			c.m.rejected.WithLabelValues("malformed").Inc()
		case m.Kind != protocol.KindReply || m.From != r.id:
			c.m.rejected.WithLabelValues("bad-mac").Inc()
		default:
			if err := c.keys.Verify(c.mode, &m, r.id); err != nil {
				c.m.rejected.WithLabelValues(authReason(err)).Inc()
			} else {
				c.reply(r.id, m)
			}
		}
	}
	if e.Status != nil {
		r.mu.Lock()
		r.status, r.watching = *e.Status, true
		r.mu.Unlock()
	}
	if e.Dropped > r.dropped {
		// Lost reports: the checkers saw less of this replica than it did.
		c.m.dropped.WithLabelValues("events").Add(float64(e.Dropped - r.dropped))
		c.log.Warn("a replica process dropped events for soakd (queue full)", "node", r.name, "dropped", e.Dropped)
		r.dropped = e.Dropped
	}
	if e.Counters != nil {
		c.m.addCounts(e.Counters, r.counts) // only this goroutine touches r.counts
		r.counts = e.Counters
	}
}

// request sends a client's request to the replica's protocol address,
// authenticated with the client's keys.
func (r *procReplica) request(m protocol.Message) {
	r.c.keys.Authenticate(r.c.mode, &m)
	r.client.send(wire.Append(nil, &m))
}

func (r *procReplica) setBehavior(b byzantine.Behavior) error {
	var rc byzantine.Recipe
	if b != nil {
		var ok bool
		if rc, ok = byzantine.RecipeOf(b); !ok {
			return fmt.Errorf("pbft: %s: behaviour %s cannot run in a replica process (it shares state across replicas)", r.name, b.Name())
		}
	}
	return r.call(context.Background(), http.MethodPost, "/pbft/v1/behavior", rc, nil)
}

func (r *procReplica) setMessageFaults(f components.MessageFault) error {
	return r.call(context.Background(), http.MethodPost, "/pbft/v1/message-faults", f, nil)
}

// call is one request to the replica process's API.
func (r *procReplica) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	r.mu.Lock()
	addr := r.httpAddr
	r.mu.Unlock()
	if addr == "" {
		return fmt.Errorf("pbft: %s is not running", r.name)
	}
	if err := nodeproc.Call(ctx, r.c.http, addr, method, path, in, out); err != nil {
		return fmt.Errorf("pbft: %s: %w", r.name, err)
	}
	return nil
}

// BehaviorActed implements faults/byzantine.ActedCounter: a replica
// process counts what its behaviour acted on; false for an in-process one.
func (c *Cluster) BehaviorActed(id string) (int64, bool) {
	n, err := c.node(id)
	if err != nil {
		return 0, false
	}
	r, ok := n.(*procReplica)
	if !ok {
		return 0, false
	}
	var st HostStatus
	if err := r.call(context.Background(), http.MethodGet, "/pbft/v1/status", nil, &st); err != nil {
		return 0, true
	}
	return st.BehaviorActed, true
}

// ProcessTargets implements components.ProcessTargets: every replica
// process, with its pid and address now (none in mode inprocess).
func (c *Cluster) ProcessTargets() []components.ProcessTarget {
	var out []components.ProcessTarget
	for _, n := range c.nodes {
		r, ok := n.(*procReplica)
		if !ok {
			return nil
		}
		r.mu.Lock()
		out = append(out, nodeproc.Target(r.name, !r.remote, r.proc, r.httpAddr))
		r.mu.Unlock()
	}
	return out
}

// ExternalLinks implements components.ExternalLinks.
func (c *Cluster) ExternalLinks() string {
	if c.procMode != config.ModeRemote {
		return ""
	}
	return "pbft's replicas are remote (components.pbft.mode remote): their links do not run through soakd, so fault them with faults.backend chaosmesh"
}

// errRemote refuses to crash or restart a replica soakd did not start.
func (c *Cluster) errRemote(what, id string) error {
	if c.procMode != config.ModeRemote {
		return nil
	}
	return fmt.Errorf("pbft: %s %s: the replica is remote (components.pbft.mode remote), soakd cannot %s it; use faults.backend chaosmesh (PodChaos) or the replica's orchestrator", what, id, what)
}
