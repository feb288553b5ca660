package pbft

import (
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/nodeproc"
	"github.com/soakd/soakd/internal/components/pbft/auth"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
)

const (
	// hostEvents bounds the events waiting for the watching soakd; past it
	// an event is dropped and counted (a lost reply is resent by its
	// client, a lost execution is one report fewer for the checkers).
	hostEvents = 1 << 14
	// statusEvery is how often a changed status goes to the watcher, and
	// countersEvery how often the message counters do.
	statusEvery   = 100 * time.Millisecond
	countersEvery = time.Second
	// eventWriteTimeout bounds one write to a watcher that stopped reading.
	eventWriteTimeout = 10 * time.Second
)

// HostOptions configures one replica run as its own process.
type HostOptions struct {
	// ID is the replica's node id, node-1..node-N, one of Peers.
	ID string
	// Dir is its state dir.
	Dir string
	// Seed is the run's seed: every replica and soakd's clients derive the
	// same keys from it.
	Seed uint64
	// Peers is every replica's protocol address, this one's included: it
	// listens on its own.
	Peers map[string]string
	// MaxKeys bounds the replicated store (load.pbft.keys).
	MaxKeys int
	Dial    components.Dialer
	Logger  *slog.Logger
	Metrics prometheus.Registerer
	// Diverge plants a bug for tests: the replica's store corrupts what it
	// puts, so its results and checkpoints differ from the others'.
	Diverge bool
}

// Host is one PBFT replica as a `soakd node` process: the same node an
// in-process Cluster runs, its peers other Hosts, and what it executes,
// checkpoints, restores and replies streamed to the soakd that watches it
// (GET /pbft/v1/events), whose clients and checkers act on it as they do
// for an in-process replica.
type Host struct {
	env     replicaEnv
	node    *node
	events  chan Event
	dropped atomic.Uint64
	// acting is the behaviour in force, counting what it acts on (nil: none).
	acting atomic.Pointer[actedCounting]

	mu        sync.Mutex
	cancelSub context.CancelFunc // the current watcher's
	// consuming is held by the one watcher taking events off the queue.
	consuming sync.Mutex
}

// Event is one thing a replica process tells its watcher (gob-encoded).
type Event struct {
	// Restored: the replica recovered from its disk to this checkpoint.
	Restored *protocol.Seq
	Executed []protocol.Committed
	// Checkpoint is one it took (without its snapshot).
	Checkpoint *protocol.Checkpoint
	Stable     protocol.Seq
	// Reply is a wire frame of a reply, authenticated for its client.
	Reply  []byte
	Status *protocol.Status
	// Counters are the replica's message counters, cumulative over the
	// process, keyed "family/label" (sent/<kind>, rejected/<reason>,
	// dropped/<where>, view_changes/<node>).
	Counters map[string]float64
	// Dropped counts the events dropped so far, queue full.
	Dropped uint64
}

// StartHost recovers the replica from its disk and runs it.
func StartHost(o HostOptions) (*Host, error) {
	n := len(o.Peers)
	if n < 4 || (n-1)%3 != 0 {
		return nil, fmt.Errorf("pbft: replicas must be 3f+1 >= 4, got %d peers", n)
	}
	ids := make([]string, n)
	addrs := make([]string, n)
	for i := range n {
		ids[i] = replicaName(i)
		a, ok := o.Peers[ids[i]]
		if !ok {
			return nil, fmt.Errorf("pbft: no --peer for %s (want node-1..node-%d)", ids[i], n)
		}
		addrs[i] = a
	}
	self := slices.Index(ids, o.ID)
	if self < 0 {
		return nil, fmt.Errorf("pbft: --id %q is not one of node-1..node-%d", o.ID, n)
	}
	h := &Host{events: make(chan Event, hostEvents)}
	h.env = replicaEnv{n: n, keys: auth.NewKeys(o.Seed, n), mode: auth.MACs, maxKeys: o.MaxKeys, log: o.Logger,
		dial: o.Dial, peerAddr: func(j int) string { return addrs[j] }, sink: h, diverge: o.Diverge}
	if h.env.maxKeys <= 0 {
		h.env.maxKeys = defaultMaxKeys
	}
	if h.env.log == nil {
		h.env.log = slog.New(slog.DiscardHandler)
	}
	if h.env.dial == nil {
		h.env.dial = components.DirectDialer
	}
	var err error
	if h.env.m, err = newMetrics(o.Metrics, []string{o.ID}); err != nil {
		return nil, err
	}
	h.node = newNode(&h.env, self, "")
	h.node.dir, h.node.bindAddr = o.Dir, addrs[self]
	if err := h.node.start(); err != nil {
		return nil, err
	}
	return h, nil
}

// Close stops the replica; its disk keeps what it executed.
func (h *Host) Close() {
	h.node.halt()
	h.mu.Lock()
	if h.cancelSub != nil {
		h.cancelSub()
	}
	h.mu.Unlock()
}

// Status is the replica's state now.
func (h *Host) Status() HostStatus {
	running, st := h.node.state()
	return HostStatus{Node: h.node.name, Running: running, Addr: h.node.Addr(), Status: st,
		EventsDropped: h.dropped.Load(), BehaviorActed: h.acting.Load().count()}
}

// actedCounting counts the messages a behaviour acts on, so that soakd
// can verify a Byzantine fault took effect in this process.
type actedCounting struct {
	byzantine.Behavior
	acted atomic.Int64
}

func (a *actedCounting) Outgoing(o byzantine.Out) []byzantine.Out {
	a.acted.Add(1)
	return a.Behavior.Outgoing(o)
}

func (a *actedCounting) count() int64 {
	if a == nil {
		return 0
	}
	return a.acted.Load()
}

// HostStatus is GET /pbft/v1/status.
type HostStatus struct {
	Node          string          `json:"node"`
	Running       bool            `json:"running"`
	Addr          string          `json:"addr"`
	Status        protocol.Status `json:"status"`
	EventsDropped uint64          `json:"events_dropped"`
	// BehaviorActed is the messages the Byzantine behaviour in force acted on.
	BehaviorActed int64 `json:"behavior_acted"`
}

func (h *Host) emit(e Event) {
	select {
	case h.events <- e:
	default:
		h.dropped.Add(1)
	}
}

// The replicaSink of the host's replica: everything goes to the watcher.

func (h *Host) executed(_ protocol.ReplicaID, cs []protocol.Committed) {
	h.emit(Event{Executed: cs})
}

func (h *Host) checkpointed(_ protocol.ReplicaID, cp protocol.Checkpoint, stable protocol.Seq) {
	if cp.Seq > 0 {
		cp.Snapshot = nil // the checkers need its number and digest only
		h.emit(Event{Checkpoint: &cp})
	}
	if stable > 0 {
		h.emit(Event{Stable: stable})
	}
}

func (h *Host) restored(_ protocol.ReplicaID, seq protocol.Seq) { h.emit(Event{Restored: &seq}) }

func (h *Host) reply(_ protocol.ReplicaID, m protocol.Message) {
	h.env.keys.Authenticate(h.env.mode, &m)
	h.emit(Event{Reply: wire.Append(nil, &m)})
}

// Handler serves the replica's API:
//
//	GET  /pbft/v1/status          HostStatus
//	GET  /pbft/v1/events          the event stream (gob); a new watcher replaces the last
//	POST /pbft/v1/behavior        a byzantine.Recipe, or {} for a correct replica
//	POST /pbft/v1/message-faults  a components.MessageFault, or {} for none
//
// Clients send their requests to the replica's protocol address, as its
// peers do, authenticated with their keys.
func (h *Host) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pbft/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.Status())
	})
	mux.HandleFunc("GET /pbft/v1/events", h.serveEvents)
	mux.HandleFunc("POST /pbft/v1/behavior", func(w http.ResponseWriter, r *http.Request) {
		var rc byzantine.Recipe
		if err := decodeBody(r, &rc); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var ac *actedCounting
		if rc.Name != "" {
			built, err := byzantine.New(rc.Name, rc.Params, h.node.id, h.env.n, rc.Seed)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ac = &actedCounting{Behavior: built}
		}
		h.acting.Store(ac)
		var b byzantine.Behavior
		if ac != nil {
			b = ac
		}
		_ = h.node.setBehavior(b)
		h.env.log.Info("byzantine behaviour set", "behavior", rc.Name)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /pbft/v1/message-faults", func(w http.ResponseWriter, r *http.Request) {
		var f components.MessageFault
		if err := decodeBody(r, &f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = h.node.setMessageFaults(f)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func decodeBody(r *http.Request, v any) error {
	if err := nodeproc.DecodeBody(r, v); err != nil {
		return fmt.Errorf("pbft node: %w", err)
	}
	return nil
}

// serveEvents streams events to one watcher until it goes or a newer one
// comes; the replica's status goes with them every statusEvery it changed.
func (h *Host) serveEvents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	h.mu.Lock()
	if h.cancelSub != nil {
		h.cancelSub()
	}
	h.cancelSub = cancel
	h.mu.Unlock()
	h.consuming.Lock() // once the watcher it replaces has let go
	defer h.consuming.Unlock()
	if ctx.Err() != nil {
		return // replaced in turn while it waited
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-gob")
	w.WriteHeader(http.StatusOK)
	enc := gob.NewEncoder(w)
	send := func(e Event) error {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		e.Dropped = h.dropped.Load()
		return enc.Encode(&e)
	}
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	var last *protocol.Status
	var countedAt time.Time
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case e := <-h.events:
			err = send(e)
			for more := len(h.events); more > 0 && err == nil && ctx.Err() == nil; more-- {
				err = send(<-h.events)
			}
			if err != nil {
				h.dropped.Add(1) // taken off the queue, not delivered
			}
		case now := <-t.C:
			var e Event
			if _, st := h.node.state(); last == nil || st != *last {
				last = &st
				e.Status = &st
			}
			if now.Sub(countedAt) >= countersEvery {
				countedAt, e.Counters = now, h.env.m.counts()
			}
			if e.Status != nil || e.Counters != nil {
				err = send(e)
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				h.env.log.Info("event watcher gone", "err", err)
			}
			return
		}
	}
}
