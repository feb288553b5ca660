package check_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
)

// kvSim is a deterministic, in-process linearizable KV store driven by
// concurrent clients with random latencies: each op takes effect on the map
// at a random point between its call and its return. Ops come out in Return
// order, one at a time, so arbitrarily long histories stream in constant
// memory. dropPut, when > 0, makes the dropPut-th acknowledged put not take
// effect (a lost write).
type kvSim struct {
	rng      *rand.Rand
	keys     int
	store    map[string]string
	clients  []simClient
	seq      int
	puts     int
	dropPut  int
	dropped  *check.KVOp
	maxDelay time.Duration
}

type simClient struct {
	op      check.KVOp
	lin     time.Time
	applied bool
	apply   bool // whether the op takes effect (false: failed, or an unknown that did not apply)
}

func newKVSim(seed uint64, clients, keys int) *kvSim {
	s := &kvSim{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		keys:     keys,
		store:    map[string]string{},
		clients:  make([]simClient, clients),
		maxDelay: 2 * time.Millisecond,
	}
	for i := range s.clients {
		s.schedule(i, base)
	}
	return s
}

func (s *kvSim) delay() time.Duration {
	return time.Duration(s.rng.Int64N(int64(s.maxDelay))) + time.Microsecond
}

func (s *kvSim) schedule(c int, after time.Time) {
	s.seq++
	call := after.Add(s.delay() / 4)
	lin := call.Add(s.delay())
	ret := lin.Add(s.delay())
	key := fmt.Sprintf("k%d", s.rng.IntN(s.keys))
	op := check.KVOp{ClientID: c, Call: call, Return: ret, Key: key, Outcome: components.OutcomeOK}
	apply := true
	switch r := s.rng.IntN(100); {
	case r < 45:
		op.Op = "get"
		if s.rng.IntN(100) < 2 {
			op.Outcome = components.OutcomeUnknown
		}
	case r < 88:
		op.Op = "put"
		op.Value = fmt.Appendf(nil, "c%d-%d", c, s.seq)
	default:
		op.Op = "cas"
		op.Value = fmt.Appendf(nil, "c%d-%d", c, s.seq)
		if cur, ok := s.store[key]; ok && s.rng.IntN(3) > 0 {
			op.Expect = []byte(cur)
		} else {
			op.Expect = fmt.Appendf(nil, "c%d-%d", s.rng.IntN(len(s.clients)), s.rng.IntN(s.seq+1))
		}
	}
	if op.Op != "get" {
		switch r := s.rng.IntN(100); {
		case r < 2:
			op.Outcome = components.OutcomeFailed
			apply = false
		case r < 4:
			op.Outcome = components.OutcomeUnknown
			apply = s.rng.IntN(2) == 0
		}
	}
	s.clients[c] = simClient{op: op, lin: lin, apply: apply}
}

// next returns the next finished op, in Return order.
func (s *kvSim) next() check.KVOp {
	for {
		// The earliest pending event: a linearization point or a return.
		best, bestAt, isLin := -1, time.Time{}, false
		for i := range s.clients {
			c := &s.clients[i]
			t, lin := c.op.Return, false
			if !c.applied {
				t, lin = c.lin, true
			}
			if best < 0 || t.Before(bestAt) {
				best, bestAt, isLin = i, t, lin
			}
		}
		c := &s.clients[best]
		if isLin {
			c.applied = true
			s.linearize(c)
			continue
		}
		op := c.op
		s.schedule(best, op.Return)
		return op
	}
}

func (s *kvSim) linearize(c *simClient) {
	op := &c.op
	cur, found := s.store[op.Key]
	switch op.Op {
	case "get":
		if found {
			op.Output, op.Found = []byte(cur), true
		}
	case "put":
		if !c.apply {
			return
		}
		if op.Outcome == components.OutcomeOK {
			s.puts++
			if s.puts == s.dropPut {
				cp := *op
				s.dropped = &cp
				return // acknowledged, never applied
			}
		}
		s.store[op.Key] = string(op.Value)
	case "cas":
		if !c.apply {
			op.Swapped = false
			return
		}
		op.Swapped = found && cur == string(op.Expect)
		if op.Swapped {
			s.store[op.Key] = string(op.Value)
		}
	}
}
