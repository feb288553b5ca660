package check_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/testutil"
)

// The oracle: a plain deterministic register per key, checked by porcupine
// over the whole history at once. It shares no code with the checker. An
// unknown write may take effect at any point after its call or never
// (Return = +inf, output unconstrained); an unknown read and a failed op
// are left out.
type oracleIn struct {
	op            string
	value, expect string
	unknown       bool
}

type oracleOut struct {
	value   string // get: value read, "" with found false
	found   bool
	swapped bool
}

type oracleState struct {
	value   string
	present bool
}

var oracleModel = porcupine.Model{
	Partition: testutil.PartitionByKey(func(in any) string { return in.(keyed).key }),
	Init:      func() any { return oracleState{} },
	Step: func(st, inp, outp any) (bool, any) {
		s := st.(oracleState)
		in := inp.(keyed).in
		out := outp.(oracleOut)
		switch in.op {
		case "get":
			return out.found == s.present && (!s.present || out.value == s.value), s
		case "put":
			return true, oracleState{value: in.value, present: true}
		case "cas":
			match := s.present && s.value == in.expect
			if in.unknown {
				if match {
					return true, oracleState{value: in.value, present: true}
				}
				return true, s
			}
			if out.swapped != match {
				return false, nil
			}
			if match {
				return true, oracleState{value: in.value, present: true}
			}
			return true, s
		}
		return false, nil
	},
	Equal: func(a, b any) bool { return a.(oracleState) == b.(oracleState) },
}

type keyed struct {
	key string
	in  oracleIn
}

// oracleLinearizable checks the whole history in one piece.
func oracleLinearizable(t *testing.T, ops []check.KVOp) bool {
	t.Helper()
	var hist []porcupine.Operation
	for _, op := range ops {
		unknown := op.Outcome == components.OutcomeUnknown
		if op.Outcome == components.OutcomeFailed || unknown && op.Op == "get" {
			continue
		}
		ret := op.Return.Sub(base).Nanoseconds()
		if unknown {
			ret = math.MaxInt64
		}
		hist = append(hist, porcupine.Operation{
			ClientId: op.ClientID,
			Input:    keyed{op.Key, oracleIn{op: op.Op, value: string(op.Value), expect: string(op.Expect), unknown: unknown}},
			Output:   oracleOut{value: string(op.Output), found: op.Found, swapped: op.Swapped},
			Call:     op.Call.Sub(base).Nanoseconds(),
			Return:   ret,
		})
	}
	res := porcupine.CheckOperationsTimeout(oracleModel, hist, 10*time.Second)
	if res == porcupine.Unknown {
		t.Fatal("oracle timed out")
	}
	return res == porcupine.Ok
}

// Mutations that may break a history (whether they do is the oracle's call).
const (
	mutateNone = iota
	mutateStaleRead
	mutateLostWrite
	mutateReorder
	mutations
)

// genOp is an op with its linearization point.
type genOp struct {
	op    check.KVOp
	lin   time.Time
	apply bool // an unknown or failed write that takes effect or not
}

// randomHistory makes a small history of a few clients on a few keys with
// overlapping ops of random length, linearizable by construction, then
// applies the mutation.
func randomHistory(rng *rand.Rand, mutation int, unknowns bool) []check.KVOp {
	clients, keys, n := 2+rng.IntN(4), 1+rng.IntN(3), 10+rng.IntN(50)
	var gen []genOp
	next := make([]time.Time, clients)
	for i := range next {
		next[i] = base.Add(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		c := rng.IntN(clients)
		call := next[c].Add(time.Duration(rng.IntN(4)) * time.Millisecond)
		// Mostly short ops, some long ones (a leader change).
		d := time.Duration(1+rng.IntN(5)) * time.Millisecond
		if rng.IntN(8) == 0 {
			d = time.Duration(10+rng.IntN(40)) * time.Millisecond
		}
		ret := call.Add(d)
		lin := call.Add(time.Duration(rng.Int64N(int64(d) + 1)))
		next[c] = ret
		op := check.KVOp{ClientID: c, Call: call, Return: ret, Key: fmt.Sprintf("k%d", rng.IntN(keys)), Outcome: components.OutcomeOK}
		g := genOp{lin: lin, apply: true}
		switch r := rng.IntN(10); {
		case r < 4:
			op.Op = "get"
		case r < 8:
			op.Op, op.Value = "put", fmt.Appendf(nil, "v%d", i)
		default:
			op.Op, op.Value = "cas", fmt.Appendf(nil, "v%d", i)
			op.Expect = fmt.Appendf(nil, "v%d", rng.IntN(i+1))
		}
		if unknowns && rng.IntN(10) == 0 {
			op.Outcome, g.apply = components.OutcomeUnknown, rng.IntN(2) == 0
		} else if op.Op != "get" && rng.IntN(20) == 0 {
			op.Outcome, g.apply = components.OutcomeFailed, false
		}
		g.op = op
		gen = append(gen, g)
	}
	var writes []int
	for i, g := range gen {
		if g.op.Op == "put" && g.op.Outcome == components.OutcomeOK {
			writes = append(writes, i)
		}
	}
	switch mutation {
	case mutateLostWrite:
		if len(writes) > 0 {
			gen[writes[rng.IntN(len(writes))]].apply = false
		}
	case mutateReorder:
		// Two writes of one key take effect in the opposite order.
		for _, i := range rng.Perm(len(writes)) {
			for _, j := range writes {
				a, b := &gen[writes[i]], &gen[j]
				if a.op.Key == b.op.Key && a.lin.Before(b.lin) {
					a.lin, b.lin = b.lin, a.lin
					goto applied
				}
			}
		}
	applied:
	}
	order := make([]int, len(gen))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return gen[a].lin.Compare(gen[b].lin) })
	store := map[string]string{}
	history := map[string][]string{} // values each key held, for stale reads
	for _, i := range order {
		g := &gen[i]
		op := &g.op
		cur, found := store[op.Key]
		switch op.Op {
		case "get":
			if found {
				op.Output, op.Found = []byte(cur), true
			}
		case "put":
			if g.apply {
				store[op.Key] = string(op.Value)
				history[op.Key] = append(history[op.Key], string(op.Value))
			}
		case "cas":
			op.Swapped = found && cur == string(op.Expect)
			if op.Swapped && g.apply {
				store[op.Key] = string(op.Value)
				history[op.Key] = append(history[op.Key], string(op.Value))
			}
		}
	}
	if mutation == mutateStaleRead {
		var reads []int
		for i, g := range gen {
			if g.op.Op == "get" && g.op.Found && len(history[g.op.Key]) > 1 {
				reads = append(reads, i)
			}
		}
		if len(reads) > 0 {
			op := &gen[reads[rng.IntN(len(reads))]].op
			old := history[op.Key][rng.IntN(len(history[op.Key])-1)]
			op.Output = []byte(old)
		}
	}
	ops := make([]check.KVOp, len(gen))
	for i, g := range gen {
		ops[i] = g.op
	}
	return ops
}

// checkSplit records the history and checks it at random cuts; before each
// cut, every op called by then has been recorded (the checker's contract).
func checkSplit(t *testing.T, rng *rand.Rand, ops []check.KVOp, mod func(*check.LinearizabilityOptions)) check.Results {
	t.Helper()
	l, _, _ := newChecker(t, func(o *check.LinearizabilityOptions) {
		o.EvidenceDir = ""
		o.UnknownTTL = time.Hour // longer than any history: unknown writes may land to the end
		o.MaxKeyLag = time.Hour
		if mod != nil {
			mod(o)
		}
	})
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b check.KVOp) int { return a.Call.Compare(b.Call) })
	end := ops[0].Call
	for _, op := range ops {
		end = maxT(end, op.Return)
	}
	cuts := make([]time.Time, rng.IntN(8))
	for i := range cuts {
		cuts[i] = base.Add(time.Duration(rng.Int64N(int64(end.Sub(base)) + 1)))
	}
	slices.SortFunc(cuts, time.Time.Compare)
	next := 0
	for _, cut := range cuts {
		for ; next < len(ops) && !ops[next].Call.After(cut); next++ {
			l.Record(ops[next])
		}
		l.CheckUntil(cut)
	}
	for ; next < len(ops); next++ {
		l.Record(ops[next])
	}
	r := l.CheckNow()
	if r.Checked+r.Failed+r.Dropped != r.Recorded || r.Buffered != 0 || r.Dropped != 0 {
		t.Fatalf("ops unaccounted for: %+v", r)
	}
	return r
}

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestSplitVerdictEqualsWhole: checked in windows at random cut points, a
// history gets the same verdict as checked in one piece by an independent
// oracle — for correct histories and for broken ones (stale reads, lost
// writes, reordered writes).
func TestSplitVerdictEqualsWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	histories := 3000
	if testing.Short() {
		histories = 500
	}
	var illegal [mutations]int
	var total [mutations]int
	for i := 0; i < histories; i++ {
		m := i % mutations
		ops := randomHistory(rng, m, false)
		want := oracleLinearizable(t, ops)
		r := checkSplit(t, rng, ops, nil)
		if r.Unknown != 0 {
			t.Fatalf("history %d: unknown verdict %+v", i, r)
		}
		if got := r.Illegal == 0; got != want {
			t.Fatalf("history %d (mutation %d): split says linearizable=%v, whole says %v\n%s", i, m, got, want, dump(ops))
		}
		total[m]++
		if !want {
			illegal[m]++
		}
	}
	t.Logf("illegal/total by mutation (none, stale read, lost write, reorder): %v / %v", illegal, total)
	if illegal[mutateNone] != 0 {
		t.Fatalf("a correct history judged illegal by the oracle: %v", illegal)
	}
	for m := mutateStaleRead; m < mutations; m++ {
		if illegal[m] < total[m]/5 {
			t.Fatalf("mutation %d broke only %d of %d histories: the property would be vacuous", m, illegal[m], total[m])
		}
	}
}

// TestSplitNeverFalseIllegal: with unknown outcomes, and with forced cuts
// (keys cut while ops are in flight), the windowed checker may be less
// complete than the oracle but never says illegal where it says ok.
func TestSplitNeverFalseIllegal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	histories := 3000
	if testing.Short() {
		histories = 500
	}
	var forced uint64
	caught, broken := 0, 0
	for i := 0; i < histories; i++ {
		m := i % mutations
		ops := randomHistory(rng, m, true)
		want := oracleLinearizable(t, ops)
		var mod func(*check.LinearizabilityOptions)
		if i%2 == 1 {
			mod = func(o *check.LinearizabilityOptions) { o.MaxKeyLag = time.Nanosecond }
		}
		r := checkSplit(t, rng, ops, mod)
		forced += r.ForcedCuts
		if want && r.Illegal != 0 {
			t.Fatalf("history %d: false illegal (forced cuts %d)\n%s", i, r.ForcedCuts, dump(ops))
		}
		if !want {
			broken++
			if r.Illegal != 0 {
				caught++
			}
		}
	}
	t.Logf("forced cuts %d; broken histories caught %d of %d", forced, caught, broken)
	if forced == 0 || broken == 0 || caught == 0 {
		t.Fatalf("vacuous: forced %d, broken %d, caught %d", forced, broken, caught)
	}
}

func dump(ops []check.KVOp) string {
	s := ""
	for _, op := range ops {
		s += fmt.Sprintf("  c%d [%v,%v] %s %s v=%q exp=%q out=%q found=%v swapped=%v %v\n", op.ClientID,
			op.Call.Sub(base), op.Return.Sub(base), op.Op, op.Key, op.Value, op.Expect, op.Output, op.Found, op.Swapped, op.Outcome)
	}
	return s
}
