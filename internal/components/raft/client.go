package raft

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/pprof"
	"sync/atomic"
	"time"
	"unsafe"

	hraft "github.com/hashicorp/raft"
	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/components"
)

// Client retries: an attempt that definitely did not apply (no leader, not
// the leader, enqueue timeout) is retried on the (new) leader after a
// backoff doubling from clientBackoffMin to clientBackoffMax, at most
// clientAttempts times in all, and never past the op's deadline.
const (
	clientAttempts   = 5
	clientBackoffMin = 10 * time.Millisecond
	clientBackoffMax = 200 * time.Millisecond
	// enqueueTimeout bounds waiting for the leader to accept a command
	// (hashicorp's Apply timeout covers only the enqueue).
	enqueueTimeout = time.Second
)

var (
	// ErrUnknownOp is returned (outcome failed) for an op name not in Ops.
	ErrUnknownOp = errors.New("raft: unknown op")
	// ErrTooLarge is returned (outcome failed) for a key or value over the
	// limits.
	ErrTooLarge = errors.New("raft: key or value too large")
	// ErrNoLeader is returned (outcome failed) when no leader was found in
	// any attempt.
	ErrNoLeader = errors.New("raft: no leader")
)

// HistoryOp is one finished client operation, as the linearizability
// checker needs it.
type HistoryOp = components.KVOp

// Recorder receives every operation Do finishes.
type Recorder = components.KVRecorder

type recorderBox struct{ r Recorder }

// SetRecorder installs the history hook (nil removes it).
func (c *Cluster) SetRecorder(r Recorder) {
	if r == nil {
		c.recorder.Store(nil)
		return
	}
	c.recorder.Store(&recorderBox{r: r})
}

// WithClientID tags the operations done with ctx as one client's (a load
// worker's), so the checker sees its ops as sequential. Without it every
// call is its own client. It is components.WithClientID.
func WithClientID(ctx context.Context, id int) context.Context {
	return components.WithClientID(ctx, id)
}

// Do implements components.Component for ops put, get and cas. A cas
// that does not swap is outcome ok (the compare was performed); its
// Result.Value is the current value and the Recorder sees Swapped false.
func (c *Cluster) Do(ctx context.Context, op components.Op) components.Result {
	return recordedDo(ctx, c.clock, &c.clientIDs, &c.recorder, op, c.exec)
}

// recordedDo runs exec under components.DefaultOpTimeout when ctx has no
// deadline, and hands the finished op, with its client and its call and
// return times, to the recorder: the same for in-process nodes and node
// processes, so the checker reads one kind of history.
func recordedDo(ctx context.Context, clock clockwork.Clock, ids *atomic.Int64, rec *atomic.Pointer[recorderBox], op components.Op,
	exec func(context.Context, components.Op) (*reply, components.Result)) components.Result {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, components.DefaultOpTimeout)
		defer cancel()
	}
	id, ok := components.ClientID(ctx)
	if !ok {
		id = int(ids.Add(1))
	}
	call := clock.Now()
	rep, res := exec(ctx, op)
	ret := clock.Now()
	if b := rec.Load(); b != nil {
		h := HistoryOp{ClientID: id, Call: call, Return: ret, Op: op.Name, Key: op.Key, Value: op.Value, Expect: op.Expect, Outcome: res.Outcome}
		if rep != nil {
			h.Output, h.Found, h.Swapped = rep.value, rep.found, rep.swapped
		}
		b.r.Record(h)
	}
	return res
}

func (c *Cluster) exec(ctx context.Context, op components.Op) (*reply, components.Result) {
	var cmd command
	switch op.Name {
	case "put":
		cmd = command{op: opPut, key: op.Key, value: op.Value}
	case "get":
		cmd = command{op: opGet, key: op.Key}
	case "cas":
		cmd = command{op: opCAS, key: op.Key, value: op.Value, expect: op.Expect}
	default:
		return nil, components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("%w %q", ErrUnknownOp, op.Name)}
	}
	if len(op.Key) > MaxKeyBytes || len(op.Value) > MaxValueBytes || len(op.Expect) > MaxValueBytes {
		return nil, components.Result{Outcome: components.OutcomeFailed, Err: ErrTooLarge}
	}
	data := encodeCommand(cmd)
	backoff := clientBackoffMin
	hint := ""
	lastErr := ErrNoLeader
	for attempt := 0; attempt < clientAttempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				// Every earlier attempt definitely did not apply.
				return nil, components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("raft: %w (last: %w)", ctx.Err(), lastErr)}
			case <-t.C:
			}
			backoff = min(2*backoff, clientBackoffMax)
		}
		inst := c.leader(hint)
		if inst == nil {
			lastErr = ErrNoLeader
			continue
		}
		timeout := enqueueTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(d))
		}
		if timeout <= 0 {
			return nil, components.Result{Outcome: components.OutcomeFailed, Err: context.DeadlineExceeded}
		}
		f := inst.raft.Apply(data, timeout)
		bindShutdown(f, inst.stopped)
		err := c.wait(ctx, f)
		switch classify(err) {
		case components.OutcomeOK:
			rep, _ := f.Response().(*reply)
			if rep == nil {
				return nil, components.Result{Outcome: components.OutcomeUnknown, Err: errors.New("raft: missing FSM response")}
			}
			if rep.err != nil {
				// The FSM rejected it deterministically on every node: no
				// state changed.
				return rep, components.Result{Outcome: components.OutcomeFailed, Err: rep.err}
			}
			return rep, components.Result{Outcome: components.OutcomeOK, Value: rep.value, Swapped: rep.swapped}
		case components.OutcomeFailed:
			lastErr = err
			if _, id := inst.raft.LeaderWithID(); id != "" {
				hint = string(id) // follow the redirect
			}
			continue
		default:
			return nil, components.Result{Outcome: components.OutcomeUnknown, Err: fmt.Errorf("raft: %s on %s: %w", op.Name, inst.id, err)}
		}
	}
	return nil, components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("raft: %d attempts: %w", clientAttempts, lastErr)}
}

// wait waits for an Apply future, or ctx. hashicorp's futures have no
// context, so a helper goroutine waits; it ends when the future resolves,
// on commit or leadership loss, or when its instance shuts down
// (bindShutdown).
func (c *Cluster) wait(ctx context.Context, f hraft.ApplyFuture) error {
	done := make(chan error, 1)
	go func() {
		pprof.SetGoroutineLabels(c.labels)
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// classify maps an Apply result to an outcome, following hashicorp/raft
// v1.8.0's error semantics:
//
//   - nil: committed by a quorum and applied on the leader → ok.
//   - ErrNotLeader: the command reached a node that is not (or is stepping
//     down as) leader, which answers before appending it to any log → failed
//     (retried on the leader).
//   - ErrLeadershipTransferInProgress: the leader refused it before
//     appending → failed (retried).
//   - ErrEnqueueTimeout: Apply's timeout covers only handing the command to
//     the leader loop, which never took it → failed (retried).
//   - ErrLeadershipLost: appended by a leader that lost leadership before
//     commit; a later leader may still commit it → unknown.
//   - ErrRaftShutdown: either before enqueue or while in flight, and the
//     two are indistinguishable → unknown.
//   - the op's deadline passing while waiting: it may commit later →
//     unknown.
//   - anything else (e.g. a log store write error) → unknown.
func classify(err error) components.Outcome {
	switch {
	case err == nil:
		return components.OutcomeOK
	case errors.Is(err, hraft.ErrNotLeader),
		errors.Is(err, hraft.ErrLeadershipTransferInProgress),
		errors.Is(err, hraft.ErrEnqueueTimeout):
		return components.OutcomeFailed
	default:
		return components.OutcomeUnknown
	}
}

// bindShutdown makes an Apply future give up when its instance has shut
// down. hashicorp/raft v1.8.0 leaves an Apply future's ShutdownCh nil, so
// one still queued for the FSM at Shutdown never resolves and its waiter
// would leak, one goroutine per op in flight at every crash. The field is
// exported but sits in an unexported embedded struct, so it is set through
// its address; nothing in raft reads it but Error, and it is set before
// Error is called. A future of another shape is left alone.
func bindShutdown(f hraft.ApplyFuture, stopped chan struct{}) {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	sf, ok := v.Elem().Type().FieldByName("ShutdownCh")
	if !ok || sf.Type != reflect.TypeOf(stopped) {
		return
	}
	field := (*chan struct{})(unsafe.Pointer(v.Elem().FieldByIndex(sf.Index).UnsafeAddr()))
	if *field == nil {
		*field = stopped
	}
}
