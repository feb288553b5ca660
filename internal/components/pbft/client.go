package pbft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/kv"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// retransmitEvery: a client resends a request not yet answered by f+1
// replicas (to every replica: the primary may have changed).
const retransmitEvery = 300 * time.Millisecond

// clientBase offsets PBFT client ids of calls without a load worker id.
const clientBase = 1 << 32

type waitKey struct{ client, ts uint64 }

// waiter collects the replies to one request until f+1 replicas agree.
type waiter struct {
	from   map[protocol.ReplicaID][]byte
	done   chan []byte
	closed bool
}

// clients hands out timestamps and matches replies to requests.
type clients struct {
	mu      sync.Mutex
	last    map[uint64]uint64 // client → last timestamp issued
	waiting map[waitKey]*waiter
	// Calls without a client id borrow one: idle ones are reused, so the
	// ids (and every replica's reply cache, one entry per client) stay
	// bounded by the calls ever in flight at once.
	idle []uint64
	next uint64
}

// borrow lends a client id to a call that has none; giveBack returns it.
func (cs *clients) borrow() uint64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if n := len(cs.idle); n > 0 {
		id := cs.idle[n-1]
		cs.idle = cs.idle[:n-1]
		return id
	}
	cs.next++
	return clientBase + cs.next
}

func (cs *clients) giveBack(id uint64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.idle = append(cs.idle, id)
}

func (cs *clients) timestamp(client uint64) uint64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ts := max(cs.last[client]+1, uint64(time.Now().UnixNano()))
	cs.last[client] = ts
	return ts
}

// reply is a replica's reply, from a node's loop.
func (c *Cluster) reply(from protocol.ReplicaID, m protocol.Message) {
	if m.Reply == nil {
		return
	}
	k := waitKey{m.Reply.Client, m.Reply.Timestamp}
	cs := &c.clients
	cs.mu.Lock()
	defer cs.mu.Unlock()
	w, ok := cs.waiting[k]
	if !ok || w.closed {
		return
	}
	w.from[from] = m.Reply.Result
	matching := 0
	for _, r := range w.from {
		if bytes.Equal(r, m.Reply.Result) {
			matching++
		}
	}
	if matching >= c.f+1 {
		w.closed = true
		w.done <- m.Reply.Result
	}
}

// call sends op as client client's request to every replica and waits for
// f+1 matching replies, resending until ctx ends. ok false: no answer
// (outcome unknown: the request may still execute).
func (c *Cluster) call(ctx context.Context, client uint64, op []byte) (result []byte, ok bool) {
	ts := c.clients.timestamp(client)
	k := waitKey{client, ts}
	w := &waiter{from: map[protocol.ReplicaID][]byte{}, done: make(chan []byte, 1)}
	c.clients.mu.Lock()
	c.clients.waiting[k] = w
	c.clients.mu.Unlock()
	defer func() {
		c.clients.mu.Lock()
		delete(c.clients.waiting, k)
		c.clients.mu.Unlock()
	}()
	req := protocol.Message{Kind: protocol.KindRequest, Request: &protocol.Request{Client: client, Timestamp: ts, Op: op}}
	c.keys.AuthenticateRequest(req.Request)
	c.issued(req.Request)
	t := time.NewTicker(retransmitEvery)
	defer t.Stop()
	for {
		for _, n := range c.nodes {
			n.request(req)
		}
		select {
		case r := <-w.done:
			c.checks.accepted(client, ts, r)
			return r, true
		case <-ctx.Done():
			return nil, false
		case <-t.C:
		}
	}
}

// Do implements components.Component for ops put, get and cas, with the
// Raft component's semantics, and records each finished op for the
// linearizability checker.
func (c *Cluster) Do(ctx context.Context, op components.Op) components.Result {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, components.DefaultOpTimeout)
		defer cancel()
	}
	var o kv.Op
	switch op.Name {
	case "put":
		o = kv.Op{Kind: kv.OpPut, Key: op.Key, Value: op.Value}
	case "get":
		o = kv.Op{Kind: kv.OpGet, Key: op.Key}
	case "cas":
		o = kv.Op{Kind: kv.OpCAS, Key: op.Key, Value: op.Value, Expect: op.Expect}
	default:
		return components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("pbft: unknown op %q", op.Name)}
	}
	if len(o.Key) > kv.MaxKeyBytes || len(o.Value) > kv.MaxValueBytes || len(o.Expect) > kv.MaxValueBytes {
		return components.Result{Outcome: components.OutcomeFailed, Err: errors.New("pbft: key or value too large")}
	}
	id, hasID := components.ClientID(ctx)
	client := uint64(id)
	if !hasID {
		client = c.clients.borrow()
		defer c.clients.giveBack(client)
	}
	call := time.Now()
	b, ok := c.call(ctx, client, kv.EncodeOp(o))
	h := components.KVOp{ClientID: int(client), Call: call, Return: time.Now(), Op: op.Name, Key: op.Key, Value: op.Value,
		Expect: op.Expect, Outcome: components.OutcomeUnknown}
	res := components.Result{Outcome: components.OutcomeUnknown, Err: fmt.Errorf("pbft: %s: no f+1 matching replies: %w", op.Name, ctx.Err())}
	if ok {
		r, err := kv.DecodeResult(b)
		switch {
		case err != nil:
			res = components.Result{Outcome: components.OutcomeUnknown, Err: fmt.Errorf("pbft: bad reply: %w", err)}
		case r.Err != "":
			res = components.Result{Outcome: components.OutcomeFailed, Err: errors.New(r.Err)}
			h.Outcome = components.OutcomeFailed
		default:
			res = components.Result{Outcome: components.OutcomeOK, Value: r.Value, Swapped: r.Swapped}
			h.Outcome, h.Output, h.Found, h.Swapped = components.OutcomeOK, r.Value, r.Found, r.Swapped
		}
	}
	if rec := c.recorder.Load(); rec != nil {
		rec.r.Record(h)
	}
	return res
}
