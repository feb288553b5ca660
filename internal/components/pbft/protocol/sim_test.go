package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"slices"
	"testing"
)

// hashApp is a trivial deterministic service: a hash chain over the
// operations it executed.
type hashApp struct {
	h [32]byte
	n uint64
}

func (a *hashApp) Execute(op []byte) []byte {
	a.h = sha256.Sum256(append(a.h[:], op...))
	a.n++
	return binary.BigEndian.AppendUint64(a.h[:8:8], a.n)
}

func (a *hashApp) Snapshot() []byte { return binary.BigEndian.AppendUint64(a.h[:32:32], a.n) }

func (a *hashApp) Restore(b []byte) error {
	if len(b) != 40 {
		return errors.New("bad snapshot")
	}
	copy(a.h[:], b)
	a.n = binary.BigEndian.Uint64(b[32:])
	return nil
}

type simOptions struct {
	n        int
	seed     uint64
	clients  int
	requests int     // per client
	drop     float64 // probability a message is lost
	maxDelay int     // ticks; a message arrives 0..maxDelay ticks after it is sent
	config   func(*Config)
}

type inflight struct {
	from, to int // endpoints: replicas 0..n-1, clients n..
	msg      Message
}

type simClient struct {
	id      uint64
	ts      uint64
	sentAt  int
	done    int
	replies map[ReplicaID]string
}

// sim is a seeded simulation: replicas, clients, a network delivering in
// random order with delays, drops and partitions, and a tick schedule.
type sim struct {
	t       testing.TB
	o       simOptions
	f       int
	rng     *rand.Rand
	now     int
	reps    []*Replica
	down    []bool                               // crashed: nothing to or from it, no ticks
	cut     func(from, to int) bool              // partition
	byz     map[int]func(in inflight) []inflight // rewrites what a replica sends
	buckets map[int][]inflight
	clients []*simClient
	// What each replica executed and checkpointed, and the first digest
	// any replica executed at each seq.
	commits  []map[Seq]Digest
	agreed   map[Seq]Digest
	ckpts    map[Seq]Digest
	executed []int // batches executed per replica
	transfer []int // state transfers per replica
	rejects  map[string]int
	trace    hash.Hash
	conflict []string
	tap      func(i int, rd Ready) // sees every Ready
}

func newSim(t testing.TB, o simOptions) *sim {
	if o.clients == 0 {
		o.clients = 4
	}
	s := &sim{t: t, o: o, f: (o.n - 1) / 3, rng: rand.New(rand.NewPCG(o.seed, 0x9bf7)),
		down: make([]bool, o.n), byz: map[int]func(inflight) []inflight{}, buckets: map[int][]inflight{},
		agreed: map[Seq]Digest{}, ckpts: map[Seq]Digest{}, rejects: map[string]int{}, trace: sha256.New(),
		executed: make([]int, o.n), transfer: make([]int, o.n)}
	for i := range o.n {
		cfg := Config{ID: ReplicaID(i), N: o.n, App: &hashApp{}}
		if o.config != nil {
			o.config(&cfg)
		}
		r, err := NewReplica(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.reps = append(s.reps, r)
		s.commits = append(s.commits, map[Seq]Digest{})
	}
	for c := range o.clients {
		s.clients = append(s.clients, &simClient{id: uint64(c + 1), replies: map[ReplicaID]string{}})
	}
	return s
}

func (s *sim) send(from, to int, m Message) {
	if to < s.o.n && (s.down[to] || int(m.From) == to && m.Kind != KindRequest) {
		return
	}
	if from < s.o.n && s.down[from] {
		return
	}
	if s.cut != nil && s.cut(from, to) {
		return
	}
	if s.o.drop > 0 && s.rng.Float64() < s.o.drop {
		return
	}
	at := s.now + s.rng.IntN(s.o.maxDelay+1)
	s.buckets[at] = append(s.buckets[at], inflight{from, to, m})
}

// collect hands a replica's Ready to the network and the checks.
func (s *sim) collect(i int) {
	rd := s.reps[i].Ready()
	if s.tap != nil {
		s.tap(i, rd)
	}
	for _, env := range rd.Messages {
		outs := []inflight{{from: i, to: int(env.To), msg: env.Msg}}
		if env.All {
			outs = outs[:0]
			for j := range s.o.n {
				if j != i {
					outs = append(outs, inflight{from: i, to: j, msg: env.Msg})
				}
			}
		}
		if b := s.byz[i]; b != nil {
			var rewritten []inflight
			for _, o := range outs {
				rewritten = append(rewritten, b(o)...)
			}
			outs = rewritten
		}
		for _, o := range outs {
			s.send(o.from, o.to, o.msg)
		}
	}
	for _, m := range rd.Replies {
		s.send(i, s.o.n+int(m.Reply.Client)-1, m)
	}
	for _, c := range rd.Committed {
		s.executed[i]++
		s.commits[i][c.Seq] = c.Digest
		if d, ok := s.agreed[c.Seq]; !ok {
			s.agreed[c.Seq] = c.Digest
		} else if d != c.Digest && s.byz[i] == nil {
			s.conflict = append(s.conflict, fmt.Sprintf("replica %d executed %x at seq %d, another %x", i, c.Digest[:4], c.Seq, d[:4]))
		}
		fmt.Fprintf(s.trace, "exec %d %d %x\n", i, c.Seq, c.Digest[:8])
	}
	for _, cp := range rd.Checkpoints {
		if d, ok := s.ckpts[cp.Seq]; !ok {
			s.ckpts[cp.Seq] = cp.Digest
		} else if d != cp.Digest && s.byz[i] == nil {
			s.conflict = append(s.conflict, fmt.Sprintf("replica %d checkpoint %x at seq %d, another %x", i, cp.Digest[:4], cp.Seq, d[:4]))
		}
		if !slices.ContainsFunc(rd.Committed, func(c Committed) bool { return c.Seq == cp.Seq }) {
			s.transfer[i]++ // installed, not executed
		}
	}
}

func (s *sim) deliver(in inflight) {
	m := in.msg
	fmt.Fprintf(s.trace, "%d %d>%d %s v%d s%d %x\n", s.now, in.from, in.to, m.Kind, m.View, m.Seq, m.Digest[:4])
	if in.to >= s.o.n {
		s.clientReply(s.clients[in.to-s.o.n], m)
		return
	}
	if err := s.reps[in.to].Step(m); err != nil {
		var rj *Rejected
		if !errors.As(err, &rj) {
			s.t.Fatalf("Step: %v", err)
		}
		s.rejects[rj.Reason]++
	}
	s.collect(in.to)
}

func (s *sim) clientReply(c *simClient, m Message) {
	if c.done >= s.o.requests || m.Reply.Timestamp != c.ts {
		return
	}
	c.replies[m.From] = string(m.Reply.Result)
	count := map[string]int{}
	for _, res := range c.replies {
		count[res]++
		if count[res] >= s.f+1 {
			c.done++
			clear(c.replies)
			c.ts = 0 // next request at the next tick
			return
		}
	}
}

// step runs one tick: clients (re)send, due messages are delivered in
// random order (including those sent at delay 0 meanwhile), replicas tick.
func (s *sim) step() {
	for _, c := range s.clients {
		if c.done >= s.o.requests {
			continue
		}
		if c.ts == 0 {
			c.ts = uint64(c.done + 1)
			c.sentAt = s.now
		} else if s.now-c.sentAt < 40 {
			continue
		}
		c.sentAt = s.now
		req := &Request{Client: c.id, Timestamp: c.ts, Op: fmt.Appendf(nil, "c%d-%d", c.id, c.ts)}
		for i := range s.o.n {
			s.send(s.o.n+int(c.id)-1, i, Message{Kind: KindRequest, Request: req})
		}
	}
	for {
		b := s.buckets[s.now]
		if len(b) == 0 {
			break
		}
		i := s.rng.IntN(len(b))
		in := b[i]
		b[i] = b[len(b)-1]
		s.buckets[s.now] = b[:len(b)-1]
		s.deliver(in)
	}
	for i, r := range s.reps {
		if !s.down[i] {
			r.Tick()
			s.collect(i)
		}
	}
	// Sent during the ticks with no delay: the next tick's.
	s.buckets[s.now+1] = append(s.buckets[s.now+1], s.buckets[s.now]...)
	delete(s.buckets, s.now)
	s.now++
}

func (s *sim) done() bool {
	for _, c := range s.clients {
		if c.done < s.o.requests {
			return false
		}
	}
	return true
}

// run steps until every client is done or limit ticks passed.
func (s *sim) run(limit int) bool {
	for range limit {
		if s.done() {
			return true
		}
		s.step()
	}
	return s.done()
}

func (s *sim) checkSafety() {
	s.t.Helper()
	for _, c := range s.conflict {
		s.t.Error(c)
	}
}

// commitLogHash hashes the agreed commit log.
func (s *sim) commitLogHash() string {
	h := sha256.New()
	for seq := Seq(1); ; seq++ {
		d, ok := s.agreed[seq]
		if !ok {
			break
		}
		h.Write(d[:])
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}
