package check

import (
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/soakd/soakd/internal/components"
)

// The history algorithm of one key-window: turn its ops into porcupine
// operations, decide the window, and compute the exact set of end states
// to carry (see doc.go). No buffering, locking or I/O here.

type keyHistory struct {
	ops         []porcupine.Operation
	maybes      []regInput // every optional write, for closure and candidates
	pending     []regInput // unknown writes of earlier windows, folded into the model
	cands       []cand     // end-state candidates from writes
	hasMand     bool       // a mandatory write exists
	maxMandCall int64
	constrained bool // some op constrains the state (a read or a mandatory write)
	minCall     int64
	maxCall     int64
}

type cand struct {
	value string
	ret   int64
}

// buildHistory turns one key's ops into porcupine operations (see doc.go
// for the rules).
func (l *Linearizability) buildHistory(ops []KVOp, pend []pendingOp, prev, cut time.Time) keyHistory {
	h := keyHistory{maxCall: l.nanos(cut), minCall: l.nanos(cut)}
	clients := map[int]int{}
	client := func(id int) int {
		c, ok := clients[id]
		if !ok {
			c = len(clients)
			clients[id] = c
		}
		return c
	}
	add := func(clientID int, in regInput, out regOutput, call, ret int64) {
		h.ops = append(h.ops, porcupine.Operation{ClientId: client(clientID), Input: in, Output: out, Call: call, Return: ret})
		h.minCall = min(h.minCall, call)
		h.maxCall = max(h.maxCall, call)
	}
	for _, op := range ops {
		prevStraddle := !prev.IsZero() && !op.Call.After(prev)
		nextStraddle := op.Return.After(cut)
		unknown := op.Outcome == components.OutcomeUnknown
		call, ret := l.nanos(op.Call), l.nanos(op.Return)
		switch op.Op {
		case "get":
			// A read's effect-free; an unknown read or one straddling a
			// cut (it may have been linearized in the other window) is
			// left out.
			if unknown || prevStraddle || nextStraddle {
				continue
			}
			val := absentVal
			if op.Found {
				val = encPresent(op.Output)
			}
			add(op.ClientID, regInput{kind: kindGet}, regOutput{value: val}, call, ret)
			h.constrained = true
			// From an "any value" state a read is what fixes the value,
			// so what it saw is an end-state candidate too.
			h.cands = append(h.cands, cand{value: val, ret: ret})
		case "put", "cas":
			in := regInput{kind: kindPut, value: encPresent(op.Value)}
			if op.Op == "cas" {
				in.kind = kindCas
				in.expect = encPresent(op.Expect)
			}
			out := regOutput{swapped: op.Swapped}
			maybe := unknown || prevStraddle || nextStraddle
			if maybe && op.Op == "cas" && !unknown && !op.Swapped {
				continue // an acknowledged failed cas is a read: left out when straddling
			}
			if unknown || nextStraddle {
				ret = infinity
			}
			in.maybe = maybe
			add(op.ClientID, in, out, call, ret)
			if maybe {
				h.maybes = append(h.maybes, in)
			} else {
				h.constrained = true
			}
			if maybe || op.Op == "put" || op.Swapped {
				h.cands = append(h.cands, cand{value: in.value, ret: ret})
				if !maybe {
					if !h.hasMand || call > h.maxMandCall {
						h.maxMandCall = call
					}
					h.hasMand = true
				}
			}
		}
	}
	for _, p := range pend {
		op := p.op
		in := regInput{kind: kindPut, value: encPresent(op.Value), maybe: true}
		if op.Op == "cas" {
			in.kind = kindCas
			in.expect = encPresent(op.Expect)
		}
		h.pending = append(h.pending, in)
		h.maybes = append(h.maybes, in)
		h.cands = append(h.cands, cand{value: in.value, ret: infinity})
	}
	sortOps(h.ops)
	return h
}

// nanos is t as porcupine's int64 time: an offset from epoch, monotonic
// when both readings carry the monotonic clock.
func (l *Linearizability) nanos(t time.Time) int64 { return int64(t.Sub(l.epoch)) }

// closure applies optional writes in every order until nothing changes: a
// sound over-approximation of the states reachable when none is constrained.
func closure(s regState, maybes []regInput) regState {
	for changed := true; changed && !s.top; {
		changed = false
		for _, in := range maybes {
			if in.kind == kindCas && !s.has(in.expect) {
				continue
			}
			n := s.add(in.value)
			if !stateEqual(n, s) {
				s, changed = n, true
			}
		}
	}
	return s
}

// runChecks decides the window for one key and computes its possible end
// states by probing: the history plus a synthetic read at the end, after
// every op, that succeeds only if the register may hold value v. The end
// set is exactly the set of candidates whose probed history is
// linearizable. Candidates are every value the register can hold at the
// end: the values written or read by ops not followed in real time by a
// mandatory write, and the initial values when the window has no mandatory
// write.
func (l *Linearizability) runChecks(init regState, h keyHistory) (string, regState, porcupine.LinearizationInfo) {
	model := registerModel(init, h.pending)
	deadline := time.Now().Add(l.o.Timeout)
	probeCall := h.maxCall + 1
	probe := func(in regInput) porcupine.CheckResult {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return porcupine.Unknown
		}
		hist := append(h.ops[:len(h.ops):len(h.ops)], porcupine.Operation{
			ClientId: len(h.ops) + 1, Input: in, Output: regOutput{}, Call: probeCall, Return: infinity,
		})
		return porcupine.CheckOperationsTimeout(model, hist, remaining)
	}
	unknown := func() (string, regState, porcupine.LinearizationInfo) {
		return ResultUnknown, topState(false), porcupine.LinearizationInfo{}
	}

	var values []string
	seen := map[string]bool{}
	addValue := func(v string) {
		if !seen[v] {
			seen[v] = true
			values = append(values, v)
		}
	}
	all := map[string]bool{}
	for _, v := range init.vals {
		all[v] = true
		if !h.hasMand {
			addValue(v)
		}
	}
	for _, c := range h.cands {
		all[c.value] = true
		if h.hasMand && h.maxMandCall > c.ret {
			continue // definitely followed by an applied write
		}
		addValue(c.value)
	}
	lossyPossible := len(all) > MaxStates

	var end regState
	legal := false
	if init.top || lossyPossible {
		switch probe(regInput{kind: kindProbeTop}) {
		case porcupine.Unknown:
			return unknown()
		case porcupine.Ok:
			end, legal = topState(false), true
		}
	}
	if !legal {
		for _, v := range values {
			switch probe(regInput{kind: kindProbeVal, value: v}) {
			case porcupine.Unknown:
				return unknown()
			case porcupine.Ok:
				if !legal {
					end, legal = single(v, false), true
				} else {
					end = end.add(v)
				}
			}
		}
	}
	if !legal {
		// No end state is reachable, so no linearization exists; confirm
		// with a plain check, which also yields the visualization data.
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return unknown()
		}
		res, info := porcupine.CheckOperationsVerbose(model, h.ops, remaining)
		switch res {
		case porcupine.Illegal:
			return ResultIllegal, topState(false), info
		case porcupine.Unknown:
			return unknown()
		}
		l.logger.Error("linearizability: no end state found for a linearizable history; key state reset")
		return ResultOK, topState(false), porcupine.LinearizationInfo{}
	}
	if end.top && end.lossy {
		return ResultUnknown, end, porcupine.LinearizationInfo{}
	}
	if lossyPossible {
		switch probe(regInput{kind: kindProbeLossy}) {
		case porcupine.Ok, porcupine.Unknown:
			// The verdict leaned on an over-approximated set.
			return ResultUnknown, end, porcupine.LinearizationInfo{}
		}
	}
	return ResultOK, end, porcupine.LinearizationInfo{}
}
