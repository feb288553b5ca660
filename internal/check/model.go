package check

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// MaxStates bounds the set of possible values the checker tracks for one
// key. A set that would grow beyond it becomes "any value" (sound, but the
// key's check is then reported unknown, never ok or illegal on that basis).
const MaxStates = 64

// absentVal is the encoded value of an absent key. Present values are
// encoded as presentTag followed by their bytes, so no present value can
// collide with absence.
const (
	absentVal  = "\x00"
	presentTag = "\x01"
)

func encPresent(b []byte) string { return presentTag + string(b) }

func decodeVal(v string) string {
	if v == absentVal {
		return "<absent>"
	}
	return strconv.Quote(strings.TrimPrefix(v, presentTag))
}

// regState is the state of the per-key model: the set of values the register
// may hold. top means "any value" (unknown state: nothing seen yet after a
// reset, a timeout, a dropped op or an overflow). lossy is sticky and records
// that the set overflowed MaxStates somewhere on this path.
type regState struct {
	top   bool
	lossy bool
	vals  []string // sorted, distinct; empty when top
}

func single(v string, lossy bool) regState { return regState{vals: []string{v}, lossy: lossy} }

func topState(lossy bool) regState { return regState{top: true, lossy: lossy} }

func (s regState) has(v string) bool {
	if s.top {
		return true
	}
	_, ok := slices.BinarySearch(s.vals, v)
	return ok
}

// add returns s ∪ {v}, widening to top past MaxStates.
func (s regState) add(v string) regState {
	if s.top {
		return s
	}
	i, ok := slices.BinarySearch(s.vals, v)
	if ok {
		return s
	}
	if len(s.vals)+1 > MaxStates {
		return topState(true)
	}
	vals := make([]string, 0, len(s.vals)+1)
	vals = append(vals, s.vals[:i]...)
	vals = append(vals, v)
	vals = append(vals, s.vals[i:]...)
	return regState{vals: vals, lossy: s.lossy}
}

// without returns s \ {v} (top stays top: sound over-approximation).
func (s regState) without(v string) regState {
	if s.top {
		return s
	}
	i, ok := slices.BinarySearch(s.vals, v)
	if !ok {
		return s
	}
	vals := make([]string, 0, len(s.vals)-1)
	vals = append(vals, s.vals[:i]...)
	vals = append(vals, s.vals[i+1:]...)
	return regState{vals: vals, lossy: s.lossy}
}

func (s regState) String() string {
	if s.top {
		return "{any}"
	}
	parts := make([]string, len(s.vals))
	for i, v := range s.vals {
		parts[i] = decodeVal(v)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

type opKind uint8

const (
	kindGet opKind = iota
	kindPut
	kindCas
	// probes are synthetic reads at the end of a window, used to compute
	// the set of possible end states (see doc.go).
	kindProbeVal
	kindProbeTop
	kindProbeLossy
)

// regInput is a porcupine operation input. maybe marks an operation whose
// effect is optional: unknown outcome, or a write straddling a window cut.
type regInput struct {
	kind   opKind
	maybe  bool
	value  string // put value, cas new value, probe value (encoded)
	expect string // cas expected value (encoded)
}

// regOutput is a porcupine operation output.
type regOutput struct {
	value   string // get: value read (encoded)
	swapped bool   // cas
}

// step is the set-of-states transition. For a fixed linearization order it
// is exact: the resulting set is the union over every choice of the optional
// ("maybe") operations having taken effect or not.
func step(st, inp, outp any) (bool, any) {
	s := st.(regState)
	in := inp.(regInput)
	out := outp.(regOutput)
	switch in.kind {
	case kindGet:
		if !s.has(out.value) {
			return false, nil
		}
		return true, single(out.value, s.lossy)
	case kindPut:
		if in.maybe {
			return true, s.add(in.value)
		}
		return true, single(in.value, s.lossy)
	case kindCas:
		if in.maybe {
			if !s.top && s.has(in.expect) {
				return true, s.add(in.value)
			}
			return true, s
		}
		if out.swapped {
			if !s.has(in.expect) {
				return false, nil
			}
			return true, single(in.value, s.lossy)
		}
		if s.top {
			return true, s
		}
		rest := s.without(in.expect)
		if len(rest.vals) == 0 {
			return false, nil
		}
		return true, rest
	case kindProbeVal:
		return s.has(in.value), s
	case kindProbeTop:
		return s.top, s
	case kindProbeLossy:
		return s.lossy, s
	}
	return false, nil
}

func stateEqual(a, b any) bool {
	x, y := a.(regState), b.(regState)
	return x.top == y.top && x.lossy == y.lossy && slices.Equal(x.vals, y.vals)
}

func stateHash(a any) uint64 {
	s := a.(regState)
	h := fnv.New64a()
	var flags [2]byte
	if s.top {
		flags[0] = 1
	}
	if s.lossy {
		flags[1] = 1
	}
	_, _ = h.Write(flags[:])
	for _, v := range s.vals {
		_, _ = h.Write([]byte(v))
		_, _ = h.Write([]byte{0xff})
	}
	return h.Sum64()
}

func describeOp(inp, outp any) string {
	in := inp.(regInput)
	out := outp.(regOutput)
	maybe := ""
	if in.maybe {
		maybe = "maybe "
	}
	switch in.kind {
	case kindGet:
		return fmt.Sprintf("get() -> %s", decodeVal(out.value))
	case kindPut:
		return fmt.Sprintf("%sput(%s)", maybe, decodeVal(in.value))
	case kindCas:
		if in.maybe {
			return fmt.Sprintf("maybe cas(%s -> %s)", decodeVal(in.expect), decodeVal(in.value))
		}
		return fmt.Sprintf("cas(%s -> %s) -> %t", decodeVal(in.expect), decodeVal(in.value), out.swapped)
	case kindProbeVal:
		return fmt.Sprintf("end-probe(%s)", decodeVal(in.value))
	case kindProbeTop:
		return "end-probe(any)"
	case kindProbeLossy:
		return "end-probe(lossy)"
	}
	return "?"
}

// registerModel is the per-key model handed to porcupine. Its initial state
// is the set of values carried over from the previous window.
//
// pending are unknown-outcome writes of earlier windows that may still take
// effect at any moment: after every step (and initially) the state set is
// closed under them. That lets each apply any number of times, a sound
// over-approximation that keeps them out of porcupine's search.
func registerModel(init regState, pending []regInput) porcupine.Model {
	st := step
	if len(pending) > 0 {
		init = closure(init, pending)
		st = func(s, in, out any) (bool, any) {
			ok, next := step(s, in, out)
			if !ok {
				return false, nil
			}
			return true, closure(next.(regState), pending)
		}
	}
	return porcupine.Model{
		Init:              func() any { return init },
		Step:              st,
		Equal:             stateEqual,
		Hash:              stateHash,
		DescribeOperation: describeOp,
		DescribeState:     func(s any) string { return s.(regState).String() },
	}
}

// infinity is the Return time of an operation that may take effect at any
// point after its call, up to the end of the check horizon.
const infinity = math.MaxInt64

// sortOps orders porcupine operations by call time (porcupine does not need
// it, but evidence HTML and tests read better).
func sortOps(ops []porcupine.Operation) {
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
}
