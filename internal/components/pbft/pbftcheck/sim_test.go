package pbftcheck

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// The simulator generates a PBFT cluster's history as the shell would
// report it: a correct execution (every replica executes the same batch
// sequence, interleaved arbitrarily within a bounded lag), clients with one
// outstanding request each, checkpoints, stable checkpoints, state
// transfers, Byzantine periods (garbage reports), fault windows that stall
// progress, and optionally planted faults. Its events drive both the
// streaming Checker and the whole-history oracle below.

type evKind int

const (
	evExec evKind = iota
	evCheckpoint
	evStable
	evRestored
	evIssued
	evAccepted
	evByz
	evFaultStart
	evFaultEnd
	evTick
)

type event struct {
	kind    evKind
	at      time.Time
	exec    Execution
	replica protocol.ReplicaID
	seq     protocol.Seq
	digest  protocol.Digest
	client  uint64
	ts      uint64
	result  []byte
	byz     bool
}

// apply feeds one event to the checker.
func apply(c *Checker, ev event) []Violation {
	switch ev.kind {
	case evExec:
		return c.Executed(ev.at, ev.exec)
	case evCheckpoint:
		return c.Checkpoint(ev.replica, ev.seq, ev.digest)
	case evStable:
		c.Stable(ev.seq)
	case evRestored:
		c.Restored(ev.replica, ev.seq)
	case evIssued:
		return c.Issued(ev.at, ev.client, ev.ts, ev.digest)
	case evAccepted:
		return c.Accepted(ev.at, ev.client, ev.ts, ev.result)
	case evByz:
		c.SetByzantine(ev.replica, ev.byz)
	case evFaultStart:
		return c.FaultStarted(ev.at)
	case evFaultEnd:
		return c.FaultEnded(ev.at)
	case evTick:
		return c.Tick(ev.at)
	}
	return nil
}

type simConfig struct {
	n, f      int
	clients   int
	k         int // checkpoint interval
	lag       int // a replica executes at most lag seqs ahead of the slowest
	maxBatch  int
	seqs      int // stop once every replica executed this many
	byzantine bool
	transfers bool
	faults    bool          // fault windows (stalls)
	plant     float64       // probability of a planted fault per opportunity
	step      time.Duration // mean time between events
}

// planted counts the planted faults by invariant.
type planted map[string]int

type sim struct {
	cfg     simConfig
	rng     *rand.Rand
	now     time.Time
	emit    func(event)
	batches map[protocol.Seq][]protocol.Request // truth, pruned below min progress
	p       []protocol.Seq                      // progress per replica
	byz     []bool
	stable  protocol.Seq
	fault   bool
	created protocol.Seq
	// Clients: next timestamp, outstanding request (0: idle), ordered?
	nextTs      []uint64
	outstanding []uint64
	ordered     []bool
	execCount   map[reqKey]int
	lastReq     []*protocol.Request // per replica, last request it executed correctly
	fresh       uint64
	planted     planted
}

func simOp(c, ts uint64) []byte { return fmt.Appendf(nil, "op-%d-%d", c, ts) }

func simResult(c, ts uint64) []byte { return fmt.Appendf(nil, "res-%d-%d", c, ts) }

func stateDigest(s protocol.Seq) protocol.Digest {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s))
	return sha256.Sum256(b[:])
}

var simBase = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// runSim generates a history; emit receives every event in order.
func runSim(cfg simConfig, seed uint64, emit func(event)) planted {
	s := &sim{
		cfg: cfg, rng: rand.New(rand.NewPCG(seed, 99)), now: simBase, emit: emit,
		batches: map[protocol.Seq][]protocol.Request{}, p: make([]protocol.Seq, cfg.n), byz: make([]bool, cfg.n),
		nextTs: make([]uint64, cfg.clients), outstanding: make([]uint64, cfg.clients), ordered: make([]bool, cfg.clients),
		execCount: map[reqKey]int{}, lastReq: make([]*protocol.Request, cfg.n), fresh: 1 << 40, planted: planted{},
	}
	for i := range s.nextTs {
		s.nextTs[i] = 1
	}
	for slices.Min(s.p) < protocol.Seq(cfg.seqs) {
		s.step()
	}
	// Let the last requests finish, then a final tick.
	if s.fault {
		s.fault = false
		s.out(event{kind: evFaultEnd})
	}
	for range 4 * cfg.clients {
		s.accept()
	}
	s.advance()
	s.out(event{kind: evTick})
	return s.planted
}

func (s *sim) advance() {
	if s.cfg.step > 0 {
		s.now = s.now.Add(time.Duration(s.rng.Int64N(int64(2 * s.cfg.step))))
	}
}

func (s *sim) out(ev event) {
	ev.at = s.now
	s.emit(ev)
}

func (s *sim) plant() bool { return s.cfg.plant > 0 && s.rng.Float64() < s.cfg.plant }

func (s *sim) step() {
	s.advance()
	switch x := s.rng.IntN(100); {
	case x < 15:
		s.issue()
	case x < 70:
		s.execute()
	case x < 85:
		s.accept()
	case x < 92:
		s.stabilize()
	case x < 94 && s.cfg.transfers:
		s.transfer()
	case x < 95 && s.cfg.byzantine:
		s.toggleByz()
	case x < 97 && s.cfg.faults:
		s.fault = !s.fault
		if s.fault {
			s.out(event{kind: evFaultStart})
		} else {
			s.out(event{kind: evFaultEnd})
		}
	default:
		s.out(event{kind: evTick})
	}
}

func (s *sim) issue() {
	c := s.rng.IntN(s.cfg.clients)
	if s.outstanding[c] != 0 {
		return
	}
	ts := s.nextTs[c]
	s.nextTs[c]++
	s.outstanding[c], s.ordered[c] = ts, false
	s.out(event{kind: evIssued, client: uint64(c), ts: ts, digest: OpDigest(simOp(uint64(c), ts))})
}

// batch returns the batch at seq, creating it from the unordered requests.
func (s *sim) batch(seq protocol.Seq) []protocol.Request {
	for s.created < seq {
		s.created++
		var b []protocol.Request
		for _, c := range s.rng.Perm(s.cfg.clients) {
			if len(b) >= s.cfg.maxBatch {
				break
			}
			if ts := s.outstanding[c]; ts != 0 && !s.ordered[c] && s.rng.IntN(2) == 0 {
				s.ordered[c] = true
				b = append(b, protocol.Request{Client: uint64(c), Timestamp: ts, Op: simOp(uint64(c), ts)})
			}
		}
		s.batches[s.created] = b
	}
	return s.batches[seq]
}

func (s *sim) execute() {
	if s.fault && s.rng.IntN(10) != 0 {
		return // stalled
	}
	r := s.rng.IntN(s.cfg.n)
	minP := slices.Min(s.p)
	seq := s.p[r] + 1
	if seq > minP+protocol.Seq(s.cfg.lag) {
		return
	}
	b := s.batch(seq)
	s.p[r] = seq
	res := make([][]byte, len(b))
	for i, q := range b {
		res[i] = simResult(q.Client, q.Timestamp)
		s.execCount[reqKey{q.Client, q.Timestamp}]++
	}
	e := Execution{Replica: protocol.ReplicaID(r), Seq: seq, Digest: protocol.BatchDigest(b), Requests: slices.Clone(b), Results: res}
	if s.byz[r] {
		// Garbage: a different digest, a request never issued, a repeat.
		e.Digest[0] ^= 0xff
		s.fresh++
		e.Requests = append(e.Requests, protocol.Request{Client: s.fresh, Timestamp: 1})
		e.Results = append(e.Results, []byte("garbage"))
		if q := s.lastReq[r]; q != nil {
			e.Requests = append(e.Requests, *q)
			e.Results = append(e.Results, []byte("garbage"))
		}
	} else {
		if s.plant() {
			e.Digest[1] ^= 0x01
			s.planted[InvAgreement]++
		}
		if q := s.lastReq[r]; q != nil && s.plant() {
			e.Requests = append(e.Requests, *q)
			e.Results = append(e.Results, simResult(q.Client, q.Timestamp))
			s.planted[InvIntegrity]++
		}
		if s.plant() {
			s.fresh++
			e.Requests = append(e.Requests, protocol.Request{Client: s.fresh, Timestamp: 1, Op: []byte("forged")})
			e.Results = append(e.Results, []byte("forged"))
			s.planted[InvValidity]++
		}
		if len(b) > 0 {
			q := b[len(b)-1]
			s.lastReq[r] = &q
		}
	}
	s.out(event{kind: evExec, exec: e})
	if s.cfg.k > 0 && seq%protocol.Seq(s.cfg.k) == 0 {
		d := stateDigest(seq)
		if s.byz[r] || s.plant() {
			d[2] ^= 0x01
			if !s.byz[r] {
				s.planted[InvCheckpoint]++
			}
		}
		s.out(event{kind: evCheckpoint, replica: protocol.ReplicaID(r), seq: seq, digest: d})
	}
	// Prune the truth below every replica.
	if m := slices.Min(s.p); m > 0 {
		delete(s.batches, m)
	}
}

func (s *sim) accept() {
	c := s.rng.IntN(s.cfg.clients)
	ts := s.outstanding[c]
	k := reqKey{uint64(c), ts}
	// Normally after f+1 replicas executed it; sometimes as soon as it is
	// ordered (the shell may see the client's accept before the replicas'
	// executions).
	if ts == 0 || (s.execCount[k] < s.cfg.f+1 && !(s.ordered[c] && s.rng.IntN(4) == 0)) {
		return
	}
	res := simResult(uint64(c), ts)
	if s.plant() {
		res = append(res, 'x')
		s.planted[InvValidity]++
	}
	delete(s.execCount, k)
	s.outstanding[c] = 0
	s.out(event{kind: evAccepted, client: uint64(c), ts: ts, result: res})
}

func (s *sim) stabilize() {
	ps := slices.Clone(s.p)
	slices.Sort(ps)
	hi := ps[s.cfg.f] // the (n-f)-th highest: 2f+1 replicas are at or past it
	k := protocol.Seq(max(s.cfg.k, 1))
	st := hi / k * k
	if st > s.stable {
		s.stable = st
		s.out(event{kind: evStable, seq: st})
	}
}

func (s *sim) transfer() {
	r := s.rng.IntN(s.cfg.n)
	if s.p[r] >= s.stable {
		return
	}
	s.p[r] = s.stable
	s.out(event{kind: evRestored, replica: protocol.ReplicaID(r), seq: s.stable})
}

func (s *sim) toggleByz() {
	nb := 0
	for _, b := range s.byz {
		if b {
			nb++
		}
	}
	r := s.rng.IntN(s.cfg.n)
	if !s.byz[r] && nb >= s.cfg.f {
		return
	}
	s.byz[r] = !s.byz[r]
	s.out(event{kind: evByz, replica: protocol.ReplicaID(r), byz: s.byz[r]})
}

// violationKey identifies a violation for comparing verdicts.
func violationKey(v Violation) string {
	switch v.Invariant {
	case InvAgreement:
		if v.Digest == v.OtherDigest {
			return fmt.Sprintf("agreement-result c=%d ts=%d", v.Client, v.Timestamp)
		}
		return fmt.Sprintf("agreement seq=%d", v.Seq)
	case InvIntegrity:
		return fmt.Sprintf("integrity r=%d c=%d ts=%d", v.Replica, v.Client, v.Timestamp)
	case InvValidity:
		return fmt.Sprintf("validity c=%d ts=%d", v.Client, v.Timestamp)
	case InvCheckpoint:
		return fmt.Sprintf("checkpoint seq=%d", v.Seq)
	case InvLiveness:
		what := "commit"
		if v.Pending > 0 {
			what = "drain"
		}
		return fmt.Sprintf("liveness ended=%v %s", v.FaultEnded.Sub(simBase), what)
	}
	return v.Invariant
}

// oracle is the whole-history checker: it keeps everything and judges the
// complete event log at the end, by the definitions in doc.go, with none of
// the streaming checker's bookkeeping (windows, floors, forgetting).
func oracle(n int, t1, t2 time.Duration, evs []event) map[string]bool {
	out := map[string]bool{}
	byz := make([]bool, n)
	firstDigest := map[protocol.Seq]protocol.Digest{}
	firstCP := map[protocol.Seq]protocol.Digest{}
	type execd struct {
		ts  uint64
		seq protocol.Seq
	}
	executed := make([]map[uint64][]execd, n) // replica -> client -> executions
	for i := range executed {
		executed[i] = map[uint64][]execd{}
	}
	issued := map[reqKey]protocol.Digest{}
	issuedIdx := map[reqKey]int{}
	firstResult := map[reqKey][]byte{}
	accepted := map[reqKey][]byte{}
	finishedAt := map[reqKey]int{} // event index
	for i, ev := range evs {
		switch ev.kind {
		case evByz:
			byz[ev.replica] = ev.byz
		case evRestored:
			for c, xs := range executed[ev.replica] {
				executed[ev.replica][c] = slices.DeleteFunc(xs, func(x execd) bool { return x.seq > ev.seq })
			}
		case evCheckpoint:
			if byz[ev.replica] {
				continue
			}
			if d, ok := firstCP[ev.seq]; !ok {
				firstCP[ev.seq] = ev.digest
			} else if d != ev.digest {
				out[fmt.Sprintf("checkpoint seq=%d", ev.seq)] = true
			}
		case evIssued:
			k := reqKey{ev.client, ev.ts}
			if _, ok := issued[k]; !ok {
				issued[k] = ev.digest
				issuedIdx[k] = i
			}
		case evAccepted:
			k := reqKey{ev.client, ev.ts}
			if _, ok := issued[k]; !ok {
				out[fmt.Sprintf("validity c=%d ts=%d", ev.client, ev.ts)] = true
				continue
			}
			if _, ok := accepted[k]; ok {
				continue
			}
			accepted[k] = ev.result
			if _, ok := firstResult[k]; ok {
				finishedAt[k] = i
			}
		case evExec:
			e := ev.exec
			if byz[e.Replica] {
				continue
			}
			if d, ok := firstDigest[e.Seq]; !ok {
				firstDigest[e.Seq] = e.Digest
			} else if d != e.Digest {
				out[fmt.Sprintf("agreement seq=%d", e.Seq)] = true
			}
			for j, q := range e.Requests {
				k := reqKey{q.Client, q.Timestamp}
				xs := executed[e.Replica][q.Client]
				for _, x := range xs {
					if x.ts >= q.Timestamp {
						out[fmt.Sprintf("integrity r=%d c=%d ts=%d", e.Replica, q.Client, q.Timestamp)] = true
					}
				}
				executed[e.Replica][q.Client] = append(xs, execd{q.Timestamp, e.Seq})
				op, ok := issued[k]
				if !ok {
					out[fmt.Sprintf("validity c=%d ts=%d", q.Client, q.Timestamp)] = true
					continue
				}
				if op != OpDigest(q.Op) {
					out[fmt.Sprintf("validity c=%d ts=%d", q.Client, q.Timestamp)] = true
				}
				if r, ok := firstResult[k]; !ok {
					firstResult[k] = e.Results[j]
					if _, ok := accepted[k]; ok {
						finishedAt[k] = i
					}
				} else if string(r) != string(e.Results[j]) {
					out[fmt.Sprintf("agreement-result c=%d ts=%d", q.Client, q.Timestamp)] = true
				}
			}
		}
	}
	for k, a := range accepted {
		if r, ok := firstResult[k]; ok && string(r) != string(a) {
			out[fmt.Sprintf("validity c=%d ts=%d", k.client, k.ts)] = true
		}
	}
	// Liveness, per fault window: from each FaultEnded to the next
	// FaultStarted or FaultEnded (inclusive) or the end of the log.
	for i, ev := range evs {
		if ev.kind != evFaultEnd {
			continue
		}
		t := ev.at
		j := i + 1
		for j < len(evs) && evs[j].kind != evFaultStart && evs[j].kind != evFaultEnd {
			j++
		}
		end := t // the last time the window was evaluated at
		for _, e := range evs[i+1 : min(j+1, len(evs))] {
			if e.kind != evCheckpoint && e.kind != evStable && e.kind != evRestored && e.kind != evByz {
				end = e.at
			}
		}
		var pending []reqKey
		for k := range issued {
			if idx, ok := finishedAt[k]; !ok || idx > i {
				if issuedIdx[k] < i {
					pending = append(pending, k)
				}
			}
		}
		// Commit.
		var commitBy, commitAt time.Time
		armed, committed := len(pending) > 0, false
		if armed {
			commitBy = t.Add(t1)
		}
		byzAt := slices.Clone(byzBefore(n, evs[:i+1]))
		for _, e := range evs[i+1 : j] {
			switch e.kind {
			case evByz:
				byzAt[e.replica] = e.byz
			case evIssued:
				if !armed && !committed {
					armed, commitBy = true, e.at.Add(t1)
				}
			case evExec:
				if !byzAt[e.exec.Replica] && !committed {
					committed, commitAt = true, e.at
				}
			}
		}
		key := fmt.Sprintf("liveness ended=%v", t.Sub(simBase))
		if t1 > 0 && armed && ((committed && commitAt.After(commitBy)) || (!committed && end.After(commitBy))) {
			out[key+" commit"] = true
		}
		// Drain.
		if t2 > 0 && len(pending) > 0 {
			last := t
			done := true
			for _, k := range pending {
				idx, ok := finishedAt[k]
				if !ok || idx >= j {
					done = false
					break
				}
				if evs[idx].at.After(last) {
					last = evs[idx].at
				}
			}
			if (done && last.After(t.Add(t2))) || (!done && end.After(t.Add(t2))) {
				out[key+" drain"] = true
			}
		}
	}
	return out
}

func byzBefore(n int, evs []event) []bool {
	b := make([]bool, n)
	for _, e := range evs {
		if e.kind == evByz {
			b[e.replica] = e.byz
		}
	}
	return b
}
