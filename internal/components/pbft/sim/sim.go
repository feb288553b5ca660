package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/auth"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/kv"
	"github.com/soakd/soakd/internal/components/pbft/pbftcheck"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
)

// TickDuration is the synthetic time one tick stands for (the shell's
// tick): the checkers see Base + tick*TickDuration.
const TickDuration = 10 * time.Millisecond

// Base is the synthetic time of tick 0.
var Base = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// Options configures a run. Zero fields take the defaults given.
type Options struct {
	// N is the number of replicas (at least 4).
	N int
	// Seed seeds everything: the network, the workload, the keys and the
	// Byzantine behaviours.
	Seed uint64
	// Byzantine names a behaviour (package byzantine, without parameters;
	// twin runs a second copy) for each Byzantine replica.
	Byzantine map[protocol.ReplicaID]string
	// Behaviors are custom behaviours (e.g. colluding replicas, or a
	// built-in one with parameters); they take precedence over Byzantine.
	Behaviors map[protocol.ReplicaID]byzantine.Behavior
	// ByzantineUntilTick, when > 0, ends the Byzantine period at that
	// tick: the behaviours are removed, the replicas count as correct
	// again, and the liveness bounds (T1Ticks, T2Ticks) are checked from
	// then. 0: Byzantine for the whole run.
	ByzantineUntilTick int
	// Mode is the authentication mode (default auth.MACs).
	Mode auth.Mode
	// Clients run closed loops of Requests kv operations each over Keys
	// keys (defaults 3, 10, 3).
	Clients, Requests, Keys int
	// RetransmitTicks: a client resends an unanswered request to every
	// replica after this many ticks (default 30, the shell's 300 ms).
	RetransmitTicks int
	// DropRate is the probability a message is lost; MaxDelay is the
	// most ticks a message is delayed (uniform in 0..MaxDelay; default 0:
	// every message arrives within its tick, in a seeded order).
	DropRate float64
	MaxDelay int
	// MaxTicks bounds the run (default 5000): it stops earlier when every
	// client has finished.
	MaxTicks int
	// T1Ticks, T2Ticks: the liveness bounds after the Byzantine period
	// ends (defaults 1000 and 3000, the shell's 10 s and 30 s).
	T1Ticks, T2Ticks int
	// Config adjusts each replica's protocol configuration (the defaults
	// are the protocol's, with a view-change timeout of 20 ticks).
	Config func(*protocol.Config)
	// RawCommitted feeds pbftcheck what Committed.Executed marks, as the
	// shell does (and checks it against what the application executed),
	// instead of the application's own record; formerly every request of each executed batch,
	// as the shell does, instead of only the requests the replica's
	// application actually executed (see the package documentation).
	RawCommitted bool
}

func (o *Options) defaults() error {
	if o.N < 4 {
		return fmt.Errorf("sim: N = %d, want at least 4", o.N)
	}
	if o.Clients <= 0 {
		o.Clients = 3
	}
	if o.Requests <= 0 {
		o.Requests = 10
	}
	if o.Keys <= 0 {
		o.Keys = 3
	}
	if o.RetransmitTicks <= 0 {
		o.RetransmitTicks = 30
	}
	if o.MaxTicks <= 0 {
		o.MaxTicks = 5000
	}
	if o.T1Ticks <= 0 {
		o.T1Ticks = 1000
	}
	if o.T2Ticks <= 0 {
		o.T2Ticks = 3000
	}
	if o.DropRate < 0 || o.DropRate >= 1 || o.MaxDelay < 0 {
		return fmt.Errorf("sim: DropRate %v (want 0 <= r < 1), MaxDelay %d", o.DropRate, o.MaxDelay)
	}
	for r, name := range o.Byzantine {
		if int(r) >= o.N {
			return fmt.Errorf("sim: Byzantine replica %d of %d", r, o.N)
		}
		if err := byzantine.Validate(name, nil); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
	}
	for r := range o.Behaviors {
		if int(r) >= o.N {
			return fmt.Errorf("sim: Byzantine replica %d of %d", r, o.N)
		}
	}
	return nil
}

// Result is what a run did.
type Result struct {
	// Ticks the run took; Done: every client finished all its requests.
	Ticks int
	Done  bool
	// TraceHash hashes every message sent, dropped and delivered (tick,
	// endpoints, encoded bytes, outcome) in order: equal traces, equal
	// hashes.
	TraceHash string
	// CommitLogs: per replica, the hash of the (view, seq, digest,
	// results) it executed, in order; Executed, the batches it executed,
	// Transfers, the checkpoints it installed by state transfer.
	CommitLogs []string
	Executed   []int
	Transfers  []int
	// Status of each replica at the end.
	Status []protocol.Status
	// Violations: pbftcheck's, over the correct replicas.
	Violations []pbftcheck.Violation
	Checker    pbftcheck.Stats
	// Recovery: the liveness measured after the Byzantine period ended
	// (zero if it never did).
	Recovery pbftcheck.Recovery
	// Linearizability of the client history (Illegal > 0: not
	// linearizable).
	Linearizability check.Results
	// History is every client operation (Outcome unknown for those still
	// in flight at the end); Finished counts the accepted ones.
	History  []components.KVOp
	Finished int
	// Latency of accepted requests, in ticks: the longest and the mean.
	MaxLatency  int
	MeanLatency float64
	// Delivered: messages handed to Step (or to a client); Failures:
	// messages not delivered, by reason (dropped, malformed, bad-mac,
	// bad-signature, bad-request); Rejected: Step's rejections by reason.
	Delivered int
	Failures  map[string]int
	Rejected  map[string]int
}

// Failed reports the safety problems of r: checker violations and a
// non-linearizable history ("" if none).
func (r *Result) Failed() string {
	var b bytes.Buffer
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "%s (replica %d, seq %d)\n", v, v.Replica, v.Seq)
	}
	if r.Linearizability.Illegal > 0 {
		fmt.Fprintf(&b, "history not linearizable: %d illegal key-windows\n", r.Linearizability.Illegal)
	}
	return b.String()
}

// Summary is a one-line account of the run.
func (r *Result) Summary() string {
	views := make([]string, len(r.Status))
	execd := make([]protocol.Seq, len(r.Status))
	for i, s := range r.Status {
		views[i], execd[i] = fmt.Sprint(s.View), s.LastExecuted
		if s.InViewChange {
			views[i] += "vc"
		}
	}
	return fmt.Sprintf("ticks=%d done=%v finished=%d/%d latency max=%d mean=%.1f views=%v executed=%v transfers=%v delivered=%d failures=%v rejected=%v violations=%d",
		r.Ticks, r.Done, r.Finished, len(r.History), r.MaxLatency, r.MeanLatency, views, execd, r.Transfers,
		r.Delivered, r.Failures, r.Rejected, len(r.Violations))
}

// inflight is one encoded message on the network: endpoints are replicas
// 0..n-1 and clients n.. .
type inflight struct {
	from, to int
	frame    []byte
}

type op struct {
	kv     kv.Op
	name   string
	ts     uint64
	frame  []byte // the authenticated, encoded request
	call   time.Time
	callAt int
	sentAt int
}

type client struct {
	id      uint64
	issued  int
	cur     *op
	replies map[protocol.ReplicaID][]byte
	seen    map[string][]byte // last value seen per key: cas expectations
}

// witness is a replica's application: the kv store, logging the ops it
// executes (every op of a run is unique) so that the simulator knows
// which requests of a batch the replica executed and which it skipped
// as already executed.
type witness struct {
	*kv.Store
	log  [][]byte
	seen map[string]struct{}
}

func (w *witness) Execute(op []byte) []byte {
	w.log = append(w.log, op)
	return w.Store.Execute(op)
}

type sim struct {
	o    Options
	f    int
	keys *auth.Keys
	net  *rand.Rand // delivery order, delays, drops
	work *rand.Rand // the workload

	tick int
	sub  time.Duration // events within the tick, for distinct times

	reps      []*protocol.Replica
	twins     []*protocol.Replica // per replica, its running twin (behaviour twin), as the shell's twin.go
	apps      []*witness
	behaviors []byzantine.Behavior
	byzOn     bool
	buckets   map[int][]inflight
	clients   []*client

	ck      *pbftcheck.Checker
	lin     *check.Linearizability
	stable  protocol.Seq
	viol    []pbftcheck.Violation
	logs    []hash.Hash
	trace   hash.Hash
	res     Result
	latency int
	tap     func(in inflight, m protocol.Message) // debugging: sees every message a replica is stepped with
}

// Run simulates a cluster under o. The error is for invalid options.
func Run(o Options) (Result, error) {
	s, err := newSim(o)
	if err != nil {
		return Result{}, err
	}
	for s.tick < s.o.MaxTicks && !s.done() {
		s.step()
	}
	return s.finish(), nil
}

func newSim(o Options) (*sim, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	s := &sim{o: o, f: (o.N - 1) / 3, keys: auth.NewKeys(o.Seed, o.N),
		net: rand.New(rand.NewPCG(o.Seed, 0x6e6574)), work: rand.New(rand.NewPCG(o.Seed, 0x776f726b)),
		behaviors: make([]byzantine.Behavior, o.N), buckets: map[int][]inflight{}, trace: sha256.New()}
	s.res.Failures, s.res.Rejected = map[string]int{}, map[string]int{}
	s.res.Executed, s.res.Transfers = make([]int, o.N), make([]int, o.N)
	s.ck = pbftcheck.New(pbftcheck.Options{N: o.N, F: s.f,
		T1: time.Duration(o.T1Ticks) * TickDuration, T2: time.Duration(o.T2Ticks) * TickDuration})
	lin, err := check.NewLinearizability(check.LinearizabilityOptions{Component: "pbft", InitialAbsent: true,
		Clock: clockwork.NewFakeClockAt(Base)})
	if err != nil {
		return nil, err
	}
	s.lin = lin
	for i := range o.N {
		id := protocol.ReplicaID(i)
		app := &witness{Store: kv.New(1024), seen: map[string]struct{}{}}
		s.apps = append(s.apps, app)
		cfg := protocol.Config{ID: id, N: o.N, ViewChangeTimeout: 20, App: app}
		if o.Config != nil {
			o.Config(&cfg)
		}
		r, err := protocol.NewReplica(cfg)
		if err != nil {
			return nil, err
		}
		s.reps = append(s.reps, r)
		s.logs = append(s.logs, sha256.New())
		s.twins = append(s.twins, nil)
		if name, ok := o.Byzantine[id]; ok && byzantine.IsTwin(name) && o.Behaviors[id] == nil {
			// A second copy with the same identity and keys, from empty
			// state; the replica counts as Byzantine while it runs.
			tcfg := cfg
			tcfg.App = kv.New(1024)
			if s.twins[i], err = protocol.NewReplica(tcfg); err != nil {
				return nil, err
			}
			s.byzOn = true
			s.ck.SetByzantine(id, true)
			continue
		}
		if b := o.Behaviors[id]; b != nil {
			s.behaviors[i] = b
		} else if name, ok := o.Byzantine[id]; ok {
			b, err := byzantine.New(name, nil, id, o.N, o.Seed)
			if err != nil {
				return nil, err
			}
			s.behaviors[i] = b
		}
		if s.behaviors[i] != nil {
			s.byzOn = true
			s.ck.SetByzantine(id, true)
		}
	}
	for c := range o.Clients {
		s.clients = append(s.clients, &client{id: uint64(c + 1),
			replies: map[protocol.ReplicaID][]byte{}, seen: map[string][]byte{}})
	}
	if s.byzOn {
		s.report(s.ck.FaultStarted(s.now()))
	}
	return s, nil
}

// now is the synthetic time of the current event: distinct and increasing
// within a tick.
func (s *sim) now() time.Time {
	s.sub++
	return Base.Add(time.Duration(s.tick)*TickDuration + min(s.sub, TickDuration-1))
}

func (s *sim) report(vs []pbftcheck.Violation) { s.viol = append(s.viol, vs...) }

func (s *sim) done() bool {
	for _, c := range s.clients {
		if c.issued < s.o.Requests || c.cur != nil {
			return false
		}
	}
	return true
}

// step runs one tick: the Byzantine period may end, clients issue and
// retransmit, the messages due are delivered in a seeded order (those
// sent meanwhile with no delay too), the replicas tick.
func (s *sim) step() {
	s.sub = 0
	if s.byzOn && s.o.ByzantineUntilTick > 0 && s.tick >= s.o.ByzantineUntilTick {
		s.byzOn = false
		for i := range s.behaviors {
			if s.behaviors[i] != nil || s.twins[i] != nil {
				s.behaviors[i], s.twins[i] = nil, nil
				s.ck.SetByzantine(protocol.ReplicaID(i), false)
			}
		}
		s.report(s.ck.FaultEnded(s.now()))
	}
	for _, c := range s.clients {
		s.clientTick(c)
	}
	for {
		b := s.buckets[s.tick]
		if len(b) == 0 {
			break
		}
		i := s.net.IntN(len(b))
		in := b[i]
		b[i] = b[len(b)-1]
		s.buckets[s.tick] = b[:len(b)-1]
		s.deliver(in)
	}
	for i, r := range s.reps {
		r.Tick()
		s.collect(i)
		if tw := s.twins[i]; tw != nil {
			tw.Tick()
			s.collectTwin(i)
		}
	}
	s.report(s.ck.Tick(s.now()))
	s.buckets[s.tick+1] = append(s.buckets[s.tick+1], s.buckets[s.tick]...)
	delete(s.buckets, s.tick)
	s.tick++
}

// send puts a frame on the network (or drops it).
func (s *sim) send(from, to int, frame []byte) {
	if s.o.DropRate > 0 && s.net.Float64() < s.o.DropRate {
		s.fail(inflight{from, to, frame}, "dropped")
		return
	}
	at := s.tick
	if s.o.MaxDelay > 0 {
		at += s.net.IntN(s.o.MaxDelay + 1)
	}
	s.buckets[at] = append(s.buckets[at], inflight{from, to, frame})
}

func (s *sim) traceEvent(in inflight, outcome string) {
	var h [24]byte
	binary.BigEndian.PutUint64(h[:], uint64(s.tick))
	binary.BigEndian.PutUint32(h[8:], uint32(in.from))
	binary.BigEndian.PutUint32(h[12:], uint32(in.to))
	binary.BigEndian.PutUint64(h[16:], uint64(len(in.frame)))
	s.trace.Write(h[:])
	s.trace.Write(in.frame)
	s.trace.Write([]byte(outcome))
}

func (s *sim) fail(in inflight, reason string) {
	s.res.Failures[reason]++
	s.traceEvent(in, reason)
}

func authReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrBadMAC):
		return "bad-mac"
	case errors.Is(err, auth.ErrBadSignature):
		return "bad-signature"
	}
	return "bad-auth"
}

// deliver decodes and verifies a message as the shell does, and steps the
// receiver with it.
func (s *sim) deliver(in inflight) {
	m, err := wire.Decode(in.frame)
	if err != nil {
		s.fail(in, "malformed")
		return
	}
	if in.to >= s.o.N {
		if err := s.keys.Verify(s.o.Mode, &m, 0); err != nil {
			s.fail(in, authReason(err))
			return
		}
		s.traceEvent(in, "ok")
		s.res.Delivered++
		s.clientReply(s.clients[in.to-s.o.N], m)
		return
	}
	to := protocol.ReplicaID(in.to)
	if err := s.keys.Verify(s.o.Mode, &m, to); err != nil {
		s.fail(in, authReason(err))
		return
	}
	if err := s.keys.VerifyRequests(&m, to); err != nil {
		s.fail(in, "bad-request")
		return
	}
	s.traceEvent(in, "ok")
	s.res.Delivered++
	if s.tap != nil {
		s.tap(in, m)
	}
	if err := s.reps[in.to].Step(m); err != nil {
		var rj *protocol.Rejected
		reason := "other"
		if errors.As(err, &rj) {
			reason = rj.Reason
		}
		s.res.Rejected[reason]++
	}
	s.collect(in.to)
	if tw := s.twins[in.to]; tw != nil {
		_ = tw.Step(m)
		s.collectTwin(in.to)
	}
}

// onSide: while replica i has a twin, the original talks to the even
// replica ids and the twin to the odd ones (the shell's twin.go).
func (s *sim) onSide(i int, twin bool, to protocol.ReplicaID) bool {
	if s.twins[i] == nil {
		return true
	}
	return (to%2 == 1) == twin
}

// collectTwin sends what replica i's twin says, to its side, and its
// replies; its executions are not checked (it is the Byzantine one).
func (s *sim) collectTwin(i int) {
	tw := s.twins[i]
	if !tw.HasReady() {
		return
	}
	rd := tw.Ready()
	for _, e := range rd.Messages {
		s.sendSide(i, e, true)
	}
	for _, m := range rd.Replies {
		if m.Reply == nil || m.Reply.Client == 0 || m.Reply.Client > uint64(len(s.clients)) {
			continue
		}
		m.From = protocol.ReplicaID(i)
		s.keys.Authenticate(s.o.Mode, &m)
		s.send(i, s.o.N+int(m.Reply.Client)-1, wire.Append(nil, &m))
	}
}

// collect acts on replica i's Ready as the shell does: the checkers see
// what it executed and checkpointed, its messages are sealed, passed
// through its Byzantine behaviour, authenticated and sent.
func (s *sim) collect(i int) {
	r := s.reps[i]
	if !r.HasReady() {
		return
	}
	rd := r.Ready()
	id := protocol.ReplicaID(i)
	for _, c := range rd.Committed {
		s.res.Executed[i]++
		h := s.logs[i]
		var b [48]byte
		binary.BigEndian.PutUint64(b[:], uint64(c.View))
		binary.BigEndian.PutUint64(b[8:], uint64(c.Seq))
		copy(b[16:], c.Digest[:])
		h.Write(b[:])
		for _, res := range c.Results {
			h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(res))))
			h.Write(res)
		}
		e := pbftcheck.Execution{Replica: id, View: c.View, Seq: c.Seq, Digest: c.Digest}
		reqs, results := s.executed(i, c)
		if s.o.RawCommitted {
			// As the shell feeds it: the batch filtered by Committed.Executed,
			// which must name exactly what the application executed.
			for j, done := range c.Executed {
				if done {
					e.Requests, e.Results = append(e.Requests, c.Batch[j]), append(e.Results, c.Results[j])
				}
			}
			if len(e.Requests) != len(reqs) {
				s.report([]pbftcheck.Violation{{Invariant: pbftcheck.InvIntegrity, At: s.now(), Replica: id, Seq: c.Seq,
					Detail: fmt.Sprintf("Committed.Executed names %d requests, the application executed %d", len(e.Requests), len(reqs))}})
			}
		} else {
			e.Requests, e.Results = reqs, results
		}
		s.report(s.ck.Executed(s.now(), e))
	}
	if app := s.apps[i]; len(app.log) > 0 {
		s.report([]pbftcheck.Violation{{Invariant: pbftcheck.InvIntegrity, At: s.now(), Replica: id,
			Detail: fmt.Sprintf("replica %d executed %d ops outside the batches it reported", i, len(app.log))}})
		app.log = app.log[:0]
	}
	for _, cp := range rd.Checkpoints {
		if !slices.ContainsFunc(rd.Committed, func(c protocol.Committed) bool { return c.Seq == cp.Seq }) {
			s.res.Transfers[i]++ // installed by state transfer, not executed
		}
		s.report(s.ck.Checkpoint(id, cp.Seq, cp.Digest))
	}
	if rd.Stable > s.stable {
		s.stable = rd.Stable
		s.ck.Stable(rd.Stable)
	}
	for _, e := range rd.Messages {
		s.sendReplica(i, e)
	}
	for _, m := range rd.Replies {
		if m.Reply == nil || m.Reply.Client == 0 || m.Reply.Client > uint64(len(s.clients)) {
			continue
		}
		m.From = id
		s.keys.Authenticate(s.o.Mode, &m)
		s.send(i, s.o.N+int(m.Reply.Client)-1, wire.Append(nil, &m))
	}
}

// executed is the part of batch c that replica i's application executed
// (in order, the witness's log), with the results; it reports a
// violation if the replica executed an op twice or out of batch order.
func (s *sim) executed(i int, c protocol.Committed) ([]protocol.Request, [][]byte) {
	app := s.apps[i]
	var reqs []protocol.Request
	var results [][]byte
	for j, q := range c.Batch {
		if len(app.log) == 0 || !bytes.Equal(app.log[0], q.Op) {
			continue // skipped: executed before
		}
		app.log = app.log[1:]
		if _, dup := app.seen[string(q.Op)]; dup {
			s.report([]pbftcheck.Violation{{Invariant: pbftcheck.InvIntegrity, At: s.now(), Replica: protocol.ReplicaID(i),
				Seq: c.Seq, Client: q.Client, Timestamp: q.Timestamp,
				Detail: fmt.Sprintf("replica %d's application executed client %d timestamp %d twice (again at seq %d)", i, q.Client, q.Timestamp, c.Seq)}})
		}
		app.seen[string(q.Op)] = struct{}{}
		reqs = append(reqs, q)
		if j < len(c.Results) {
			results = append(results, c.Results[j])
		} else {
			results = append(results, nil)
		}
	}
	return reqs, results
}

// sendReplica is the shell's node.send.
func (s *sim) sendReplica(i int, e protocol.Envelope) { s.sendSide(i, e, false) }

func (s *sim) sendSide(i int, e protocol.Envelope, twin bool) {
	id := protocol.ReplicaID(i)
	var to []protocol.ReplicaID
	if e.All {
		for j := range s.o.N {
			if j != i && s.onSide(i, twin, protocol.ReplicaID(j)) {
				to = append(to, protocol.ReplicaID(j))
			}
		}
	} else if s.onSide(i, twin, e.To) {
		to = []protocol.ReplicaID{e.To}
	}
	s.sealNested(id, &e.Msg)
	b := s.behaviors[i]
	if b == nil {
		m := e.Msg
		s.keys.Authenticate(s.o.Mode, &m)
		frame := wire.Append(nil, &m)
		for _, dst := range to {
			if int(dst) < s.o.N {
				s.send(i, int(dst), frame)
			}
		}
		return
	}
	for _, dst := range to {
		for _, o := range b.Outgoing(byzantine.Out{To: dst, Msg: e.Msg}) {
			m := o.Msg
			s.keys.Authenticate(s.o.Mode, &m)
			if o.Forge {
				auth.Forge(&m)
			}
			if int(o.To) < s.o.N && int(o.To) != i {
				s.send(i, int(o.To), wire.Append(nil, &m))
			}
		}
	}
}

// sealNested signs the sender's own messages nested in a view change (its
// checkpoints) or a new view (its view change), copying what it signs.
func (s *sim) sealNested(id protocol.ReplicaID, m *protocol.Message) {
	if vc := m.ViewChange; vc != nil && len(vc.Proof) > 0 {
		cp := *vc
		cp.Proof = slices.Clone(vc.Proof)
		for i := range cp.Proof {
			s.seal(id, &cp.Proof[i])
		}
		m.ViewChange = &cp
	}
	if nv := m.NewView; nv != nil && len(nv.ViewChanges) > 0 {
		cp := *nv
		cp.ViewChanges = slices.Clone(nv.ViewChanges)
		for i := range cp.ViewChanges {
			if cp.ViewChanges[i].From == id {
				s.sealNested(id, &cp.ViewChanges[i])
				s.seal(id, &cp.ViewChanges[i])
			}
		}
		m.NewView = &cp
	}
}

func (s *sim) seal(id protocol.ReplicaID, m *protocol.Message) {
	if m.From == id && len(m.Auth.Sig) == 0 {
		s.keys.Authenticate(s.o.Mode, m)
	}
}

// clientTick issues a client's next operation or retransmits the current
// one.
func (s *sim) clientTick(c *client) {
	switch {
	case c.cur == nil && c.issued < s.o.Requests:
		c.issued++
		o := s.newOp(c)
		o.ts = uint64(c.issued)
		req := protocol.Message{Kind: protocol.KindRequest,
			Request: &protocol.Request{Client: c.id, Timestamp: o.ts, Op: kv.EncodeOp(o.kv)}}
		s.keys.AuthenticateRequest(req.Request)
		s.keys.Authenticate(s.o.Mode, &req)
		o.frame = wire.Append(nil, &req)
		o.call, o.callAt, o.sentAt = s.now(), s.tick, s.tick
		c.cur = o
		clear(c.replies)
		s.report(s.ck.Issued(o.call, c.id, o.ts, pbftcheck.OpDigest(req.Request.Op)))
	case c.cur != nil && s.tick-c.cur.sentAt >= s.o.RetransmitTicks:
		c.cur.sentAt = s.tick
	default:
		return
	}
	for r := range s.o.N {
		s.send(s.o.N+int(c.id)-1, r, c.cur.frame)
	}
}

// newOp draws a put, get or cas on one of the keys; a cas expects the
// value the client last saw (or wrote) at the key, or a random one.
func (s *sim) newOp(c *client) *op {
	key := fmt.Sprintf("k%d", s.work.IntN(s.o.Keys))
	val := fmt.Appendf(nil, "c%d-%d", c.id, c.issued)
	switch s.work.IntN(3) {
	case 0:
		return &op{name: "put", kv: kv.Op{Kind: kv.OpPut, Key: key, Value: val}}
	case 1:
		// The store ignores a get's value: it makes the op unique.
		return &op{name: "get", kv: kv.Op{Kind: kv.OpGet, Key: key, Value: val}}
	}
	expect := c.seen[key]
	if expect == nil || s.work.IntN(4) == 0 {
		expect = fmt.Appendf(nil, "c%d-%d", 1+s.work.IntN(s.o.Clients), 1+s.work.IntN(c.issued))
	}
	return &op{name: "cas", kv: kv.Op{Kind: kv.OpCAS, Key: key, Value: val, Expect: expect}}
}

// clientReply counts a reply to the current request; f+1 matching ones
// from distinct replicas finish it.
func (s *sim) clientReply(c *client, m protocol.Message) {
	o := c.cur
	if o == nil || m.Kind != protocol.KindReply || m.Reply == nil || m.Reply.Client != c.id || m.Reply.Timestamp != o.ts ||
		int(m.From) >= s.o.N {
		return
	}
	c.replies[m.From] = m.Reply.Result
	matching := 0
	for _, r := range c.replies {
		if bytes.Equal(r, m.Reply.Result) {
			matching++
		}
	}
	if matching < s.f+1 {
		return
	}
	now := s.now()
	s.report(s.ck.Accepted(now, c.id, o.ts, m.Reply.Result))
	h := s.history(c, o, now)
	if r, err := kv.DecodeResult(m.Reply.Result); err == nil {
		switch {
		case r.Err != "":
			h.Outcome = components.OutcomeFailed
		default:
			h.Outcome, h.Output, h.Found, h.Swapped = components.OutcomeOK, r.Value, r.Found, r.Swapped
			switch {
			case o.name == "get" && r.Found:
				c.seen[o.kv.Key] = r.Value
			case o.name == "put", o.name == "cas" && r.Swapped:
				c.seen[o.kv.Key] = o.kv.Value
			case o.name == "cas" && r.Found:
				c.seen[o.kv.Key] = r.Value
			}
		}
	}
	s.lin.Record(h)
	s.res.History = append(s.res.History, h)
	s.res.Finished++
	lat := s.tick - o.callAt
	s.res.MaxLatency = max(s.res.MaxLatency, lat)
	s.latency += lat
	c.cur = nil // the next op at the next tick
}

func (s *sim) history(c *client, o *op, ret time.Time) components.KVOp {
	h := components.KVOp{ClientID: int(c.id), Call: o.call, Return: ret, Op: o.name, Key: o.kv.Key,
		Value: o.kv.Value, Expect: o.kv.Expect, Outcome: components.OutcomeUnknown}
	if o.name == "get" {
		h.Value = nil
	}
	return h
}

func (s *sim) finish() Result {
	end := s.now()
	for _, c := range s.clients {
		if c.cur != nil { // in flight: may or may not have taken effect
			h := s.history(c, c.cur, end)
			s.lin.Record(h)
			s.res.History = append(s.res.History, h)
		}
	}
	s.report(s.ck.Tick(end))
	res := s.res
	res.Ticks = s.tick
	res.Done = s.done()
	res.TraceHash = hex.EncodeToString(s.trace.Sum(nil)[:16])
	for i, r := range s.reps {
		res.CommitLogs = append(res.CommitLogs, hex.EncodeToString(s.logs[i].Sum(nil)[:16]))
		res.Status = append(res.Status, r.Status())
	}
	res.Violations = s.viol
	res.Checker = s.ck.Stats()
	res.Recovery = s.ck.LastRecovery()
	res.Linearizability = s.lin.CheckNow()
	if res.Finished > 0 {
		res.MeanLatency = float64(s.latency) / float64(res.Finished)
	}
	return res
}
