package sim

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/pbftcheck"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// profile is a network and timeout setting.
type profile struct {
	name     string
	maxDelay int // ticks
	vcTicks  int // view-change timeout
}

var (
	// calm: messages take 0..1 tick, the view-change timeout is 20 ticks:
	// view changes happen only when a Byzantine primary forces them.
	calm = profile{"calm", 1, 20}
	// stormy: 0..3 ticks against a 5-tick view-change timeout: view
	// changes all the time, so that every replica's view-change messages
	// (a liar's too) matter.
	stormy = profile{"stormy", 3, 5}
)

func (p profile) apply(o Options) Options {
	o.MaxDelay = p.maxDelay
	vc := p.vcTicks
	o.Config = func(c *protocol.Config) { c.ViewChangeTimeout = vc }
	return o
}

func run(t *testing.T, o Options) Result {
	t.Helper()
	r, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// safe fails t if a checker found a violation or the history is not
// linearizable.
func safe(t *testing.T, r Result) {
	t.Helper()
	if f := r.Failed(); f != "" {
		t.Errorf("%s\n%s", f, r.Summary())
	}
}

// live fails t unless every request finished, none took more than
// maxLatency ticks, and the run took at most maxTicks.
func live(t *testing.T, r Result, maxTicks, maxLatency int) {
	t.Helper()
	switch {
	case !r.Done:
		t.Errorf("not every request finished: %s", r.Summary())
	case r.Ticks > maxTicks:
		t.Errorf("took %d ticks, want at most %d: %s", r.Ticks, maxTicks, r.Summary())
	case r.MaxLatency > maxLatency:
		t.Errorf("a request took %d ticks, want at most %d: %s", r.MaxLatency, maxLatency, r.Summary())
	}
}

// recovered fails t unless pbftcheck measured the recovery after the
// Byzantine period and both bounds held.
func recovered(t *testing.T, r Result) {
	t.Helper()
	rec := r.Recovery
	if rec.FaultEnded.IsZero() {
		t.Errorf("the Byzantine period never ended: %s", r.Summary())
		return
	}
	if rec.CommitMissed || rec.DrainMissed || (rec.Pending > 0 && !rec.Drained) {
		t.Errorf("recovery %+v: %s", rec, r.Summary())
	}
}

var behaviours = []string{byzantine.Equivocate, byzantine.Mutate, byzantine.Forge, byzantine.Replay,
	byzantine.Silent, byzantine.LieViewChange, byzantine.Twin}

// Same seed, same run: the message trace, every replica's commit log and
// the client history. Another seed, another trace.
func TestDeterministic(t *testing.T) {
	for _, o := range []Options{
		{N: 4, Byzantine: map[protocol.ReplicaID]string{0: byzantine.Equivocate}, DropRate: 0.02, MaxDelay: 2},
		{N: 4, Byzantine: map[protocol.ReplicaID]string{1: byzantine.LieViewChange}, DropRate: 0.05, MaxDelay: 3},
		{N: 10, Byzantine: map[protocol.ReplicaID]string{0: byzantine.Equivocate, 1: byzantine.LieViewChange, 5: byzantine.Mutate},
			Requests: 5, MaxDelay: 1},
	} {
		t.Run(fmt.Sprintf("n%d-%v", o.N, o.Byzantine), func(t *testing.T) {
			o.Seed = 7
			a, b := run(t, o), run(t, o)
			if a.TraceHash != b.TraceHash || a.Ticks != b.Ticks || a.Delivered != b.Delivered {
				t.Errorf("same seed, different runs:\n%s %s\n%s %s", a.TraceHash, a.Summary(), b.TraceHash, b.Summary())
			}
			if !reflect.DeepEqual(a.CommitLogs, b.CommitLogs) {
				t.Errorf("same seed, different commit logs:\n%v\n%v", a.CommitLogs, b.CommitLogs)
			}
			if !reflect.DeepEqual(a.History, b.History) {
				t.Error("same seed, different client histories")
			}
			if !reflect.DeepEqual(a.Failures, b.Failures) || !reflect.DeepEqual(a.Rejected, b.Rejected) {
				t.Errorf("same seed, different counts: %v %v, %v %v", a.Failures, a.Rejected, b.Failures, b.Rejected)
			}
			o.Seed = 8
			if c := run(t, o); c.TraceHash == a.TraceHash {
				t.Errorf("seeds 7 and 8 gave the same trace %s", a.TraceHash)
			}
		})
	}
}

// Each Byzantine behaviour on 4 replicas (f = 1), on the primary and on a
// backup: agreement, validity, integrity and linearizability hold, every
// request finishes within a bound while the replica stays Byzantine, and
// after a Byzantine period pbftcheck's liveness bounds hold.
func TestByzantine4(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if raceEnabled {
		seeds = seeds[:1]
	}
	for _, name := range behaviours {
		for _, who := range []protocol.ReplicaID{0, 2} {
			for _, seed := range seeds {
				base := Options{N: 4, Seed: seed, Requests: 20, Byzantine: map[protocol.ReplicaID]string{who: name}}
				t.Run(fmt.Sprintf("%s/replica%d/seed%d", name, who, seed), func(t *testing.T) {
					r := run(t, calm.apply(base))
					safe(t, r)
					live(t, r, 400, 100)
					switch name {
					case byzantine.Forge:
						if r.Failures["bad-mac"] == 0 || r.Failures["bad-signature"] == 0 {
							t.Errorf("forged messages were not rejected by auth: %v", r.Failures)
						}
					case byzantine.Equivocate, byzantine.Silent, byzantine.Mutate:
						if who == 0 && r.Status[1].View == 0 {
							t.Errorf("a faulty primary, and no view change: %s", r.Summary())
						}
					}

					w := base
					w.ByzantineUntilTick, w.T1Ticks, w.T2Ticks = 30, 100, 300
					r = run(t, calm.apply(w))
					safe(t, r)
					live(t, r, 400, 100)
					recovered(t, r)
				})
			}
		}
	}
}

// The same under constant view changes: lie-view-change's lies are
// heard. Silent and forge backups hit the view-change stall (see
// TestViewChangeStall), which is skipped here.
func TestByzantine4Stormy(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if raceEnabled {
		seeds = seeds[:1]
	}
	for _, name := range behaviours {
		for _, who := range []protocol.ReplicaID{0, 2} {
			for _, seed := range seeds {
				o := stormy.apply(Options{N: 4, Seed: seed, Requests: 10, MaxTicks: 2000,
					Byzantine: map[protocol.ReplicaID]string{who: name}})
				t.Run(fmt.Sprintf("%s/replica%d/seed%d", name, who, seed), func(t *testing.T) {
					r := run(t, o)
					safe(t, r)
					// Consecutive view changes double the timeout: a
					// request can wait several of them.
					live(t, r, 2000, 1000)
					if r.Status[(who+1)%4].View < 2 {
						t.Errorf("want several view changes: %s", r.Summary())
					}
				})
			}
		}
	}
}

// mixed are Byzantine sets of f = 3 replicas of 10 with mixed behaviours.
var mixed = []map[protocol.ReplicaID]string{
	// An equivocating primary, a liar as the next one, a mutating one.
	{0: byzantine.Equivocate, 1: byzantine.LieViewChange, 2: byzantine.Mutate},
	{0: byzantine.Equivocate, 4: byzantine.LieViewChange, 7: byzantine.Mutate},
	{0: byzantine.Forge, 1: byzantine.Replay, 5: byzantine.LieViewChange},
	// Two faulty primaries in a row, then a liar.
	{0: byzantine.Silent, 1: byzantine.Equivocate, 2: byzantine.LieViewChange},
	{3: byzantine.Silent, 6: byzantine.Equivocate, 9: byzantine.Mutate},
	// A twin primary beside a forger and a liar.
	{0: byzantine.Twin, 2: byzantine.Forge, 5: byzantine.LieViewChange},
}

// 10 replicas, 3 Byzantine with mixed behaviours: the same properties.
func TestByzantine10(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if raceEnabled {
		seeds = seeds[:1]
	}
	for i, set := range mixed {
		for _, seed := range seeds {
			base := Options{N: 10, Seed: seed, Requests: 15, Byzantine: set}
			t.Run(fmt.Sprintf("set%d/seed%d", i, seed), func(t *testing.T) {
				r := run(t, calm.apply(base))
				safe(t, r)
				live(t, r, 400, 100)

				w := base
				w.ByzantineUntilTick, w.T1Ticks, w.T2Ticks = 30, 100, 300
				r = run(t, calm.apply(w))
				safe(t, r)
				live(t, r, 400, 100)
				recovered(t, r)
			})
		}
	}
}

// The checkers can fail: two colluding Byzantine replicas of 4 (beyond
// f = 1) make the correct ones execute different batches at one sequence
// number, and pbftcheck reports pbft_agreement.
func TestCollusionIsCaught(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		col := byzantine.NewCollusion(0, 2)
		o := calm.apply(Options{N: 4, Seed: seed, Requests: 20, MaxTicks: 1000,
			Behaviors: map[protocol.ReplicaID]byzantine.Behavior{0: col.Primary(), 1: col.Accomplice()}})
		r := run(t, o)
		if !hasViolation(r, pbftcheck.InvAgreement) {
			t.Errorf("seed %d: no pbft_agreement violation: %s\n%s", seed, r.Failed(), r.Summary())
		} else {
			t.Logf("seed %d: caught: %s", seed, r.Violations[0])
		}
	}
}

func hasViolation(r Result, inv string) bool {
	for _, v := range r.Violations {
		if v.Invariant == inv {
			return true
		}
	}
	return false
}

// A regression (found by this simulator): a replica kept its view-change
// timer running only while it held 2f+1 view changes for its own view,
// counting each replica's latest; when one correct replica timed out and
// moved on to v+1, the others' count for v dropped to 2f and their timers
// stopped, and it alone at v+1 was fewer than the f+1 that make them
// join. With a faulty primary nothing moved again. Here (4 replicas,
// replica 1 silent, short timeouts) view 1's primary is the silent one.
func TestViewChangeStall(t *testing.T) {
	o := stormy.apply(Options{N: 4, Seed: 1, Requests: 10, MaxTicks: 2000,
		Byzantine: map[protocol.ReplicaID]string{1: byzantine.Silent}})
	r := run(t, o)
	safe(t, r)
	live(t, r, 2000, 200)
}

// The shell (pbft/checks.go) gives pbftcheck the requests a committed
// batch marks executed (Committed.Executed), so a request a new primary
// re-proposed after it executed at an earlier sequence number is not seen
// twice; before that field, the shell fed whole batches and pbftcheck
// reported pbft_integrity falsely (seed 3, found by this simulator). With
// RawCommitted the simulator feeds it as the shell does and checks the
// marks against what the application executed.
func TestShellFeedMatchesTheApplication(t *testing.T) {
	for _, seed := range []uint64{3, 4, 5} {
		o := Options{N: 4, Seed: seed, Requests: 20, DropRate: 0.05, MaxDelay: 3, RawCommitted: true}
		r := run(t, o)
		safe(t, r)
		live(t, r, 2000, 200)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{N: 3},
		{N: 4, Byzantine: map[protocol.ReplicaID]string{4: byzantine.Silent}},
		{N: 4, Byzantine: map[protocol.ReplicaID]string{0: "nonsense"}},
		{N: 4, DropRate: 1},
	} {
		if _, err := Run(o); err == nil {
			t.Errorf("Run(%+v): no error", o)
		}
	}
}
