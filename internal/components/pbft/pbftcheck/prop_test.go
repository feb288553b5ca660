package pbftcheck

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

func randomConfig(rng *rand.Rand) simConfig {
	n := []int{1, 4, 4, 4, 7}[rng.IntN(5)]
	return simConfig{
		n: n, f: (n - 1) / 3, clients: 1 + rng.IntN(6), k: 1 + rng.IntN(8), lag: 1 + rng.IntN(12),
		maxBatch: rng.IntN(5), seqs: 50 + rng.IntN(300),
		byzantine: rng.IntN(2) == 0, transfers: rng.IntN(2) == 0, faults: rng.IntN(2) == 0,
		step: time.Millisecond,
	}
}

// TestCorrectHistoryNoViolation: a correct history — every replica
// executes the same batches, interleaved arbitrarily, with Stable calls,
// state transfers and Byzantine periods (their garbage ignored) — gives no
// violation, and nothing is late or evicted.
func TestCorrectHistoryNoViolation(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		cfg := randomConfig(rng)
		c := New(Options{N: cfg.n, F: cfg.f, Window: protocol.Seq(cfg.lag + rng.IntN(8))})
		runSim(cfg, seed, func(ev event) {
			if vs := apply(c, ev); len(vs) > 0 {
				t.Fatalf("seed %d %+v: %v", seed, cfg, vs)
			}
		})
		st := c.Stats()
		if st.Late+st.LateCheckpoints+st.EvictedSeqs+st.EvictedCheckpoints+st.EvictedRequests+st.EvictedClients != 0 {
			t.Fatalf("seed %d %+v: late or evicted: %+v", seed, cfg, st)
		}
	}
}

// TestBoundedMemory runs 100k seqs and checks the records held stay within
// the documented bounds: seqs and checkpoints within (stable - Window,
// highest executed], requests those seqs' batches plus the pending ones.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100k seqs")
	}
	cfg := simConfig{n: 4, f: 1, clients: 8, k: 16, lag: 24, maxBatch: 4, seqs: 100_000,
		byzantine: true, transfers: true, faults: true, step: time.Millisecond}
	const window = 64
	c := New(Options{N: cfg.n, F: cfg.f, Window: window, T1: time.Hour, T2: time.Hour})
	bound := window + 2*(cfg.lag+cfg.k)
	var peak Stats
	events := 0
	runSim(cfg, 42, func(ev event) {
		if vs := apply(c, ev); len(vs) > 0 {
			t.Fatalf("violation: %v", vs)
		}
		events++
		st := c.Stats()
		peak.Seqs, peak.Checkpoints = max(peak.Seqs, st.Seqs), max(peak.Checkpoints, st.Checkpoints)
		peak.Requests, peak.Pending, peak.Clients = max(peak.Requests, st.Requests), max(peak.Pending, st.Pending), max(peak.Clients, st.Clients)
		// Requests: those first executed at the held seqs, plus the
		// pending ones — one unordered per client, plus those ordered but
		// not yet executed by a correct replica (the client may accept
		// first and move on), at most a held window's batches.
		if st.Seqs > bound || st.Checkpoints > bound || st.Requests > 2*bound*cfg.maxBatch+cfg.clients ||
			st.Pending > bound*cfg.maxBatch+cfg.clients || st.Clients > cfg.clients {
			t.Fatalf("after %d events: %+v exceeds bound %d", events, st, bound)
		}
	})
	st := c.Stats()
	t.Logf("%d events, %d executions; peak held: seqs %d checkpoints %d requests %d pending %d clients %d; forgotten %d unverified %d ignored %d",
		events, st.Executions, peak.Seqs, peak.Checkpoints, peak.Requests, peak.Pending, peak.Clients, st.Forgotten, st.Unverified, st.Ignored)
	if st.Executions+st.Ignored < 100_000 {
		t.Fatalf("only %d executions", st.Executions)
	}
}

// runBoth runs one simulated history through the streaming checker and
// the whole-history oracle and returns both verdicts.
func runBoth(t *testing.T, cfg simConfig, o Options, seed uint64) (stream, whole map[string]bool, p planted, st Stats) {
	t.Helper()
	c := New(o)
	var evs []event
	stream = map[string]bool{}
	p = runSim(cfg, seed, func(ev event) {
		evs = append(evs, ev)
		for _, v := range apply(c, ev) {
			stream[violationKey(v)] = true
		}
	})
	return stream, oracle(cfg.n, o.T1, o.T2, evs), p, c.Stats()
}

// TestOracle: over random histories with random planted faults (a correct
// replica reporting a different digest, a duplicate execution, a forged
// request, an accepted reply differing from the result, a differing
// checkpoint digest, stalls that miss liveness deadlines), random Stable
// cut points, state transfers and Byzantine periods, the streaming verdict
// equals the whole-history oracle's, violation by violation, as long as
// the history stays within the bounds (Window at least the lag).
func TestOracle(t *testing.T) {
	found := map[string]int{}
	plantedTotal := planted{}
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 2))
		cfg := randomConfig(rng)
		cfg.plant = []float64{0, 0.002, 0.01, 0.03}[rng.IntN(4)]
		o := Options{N: cfg.n, F: cfg.f, Window: protocol.Seq(cfg.lag + rng.IntN(8)),
			T1: time.Duration(5+rng.IntN(40)) * time.Millisecond, T2: time.Duration(20+rng.IntN(200)) * time.Millisecond}
		if rng.IntN(4) == 0 {
			o.T1, o.T2 = 0, 0
		}
		stream, whole, p, st := runBoth(t, cfg, o, seed)
		if !maps.Equal(stream, whole) {
			t.Fatalf("seed %d %+v %+v:\nstreaming only: %v\noracle only: %v", seed, cfg, o, diff(stream, whole), diff(whole, stream))
		}
		if st.Late+st.LateCheckpoints+st.EvictedSeqs+st.EvictedCheckpoints+st.EvictedRequests+st.EvictedClients != 0 {
			t.Fatalf("seed %d: late or evicted: %+v", seed, st)
		}
		for k := range stream {
			found[invOfKey(k)]++
		}
		for k, v := range p {
			plantedTotal[k] += v
		}
	}
	t.Logf("planted %v; found %v", plantedTotal, found)
	for _, inv := range []string{"agreement", "integrity", "validity", "checkpoint", "liveness"} {
		if found[inv] == 0 {
			t.Errorf("no %s violation found over all seeds: the test does not exercise it", inv)
		}
	}
}

// TestOracleSoundWithSmallBounds: with bounds too small for the history
// (Window below the lag, tiny caps) the streaming checker misses faults
// (counted late, unverified or evicted) but never reports one the oracle
// does not.
func TestOracleSoundWithSmallBounds(t *testing.T) {
	var evicted, late uint64
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 3))
		cfg := randomConfig(rng)
		cfg.lag += 4
		cfg.plant = 0.01
		o := Options{N: cfg.n, F: cfg.f, Window: protocol.Seq(1 + rng.IntN(3)), MaxSeqs: 1 + rng.IntN(8),
			MaxPending: 1 + rng.IntN(4), MaxClients: 1 + rng.IntN(4),
			T1: time.Duration(5+rng.IntN(40)) * time.Millisecond, T2: time.Duration(20+rng.IntN(200)) * time.Millisecond}
		stream, whole, _, st := runBoth(t, cfg, o, seed)
		if d := diff(stream, whole); len(d) > 0 {
			t.Fatalf("seed %d %+v %+v: false alarms %v", seed, cfg, o, d)
		}
		evicted += st.EvictedSeqs + st.EvictedCheckpoints + st.EvictedRequests + st.EvictedClients
		late += st.Late + st.LateCheckpoints
	}
	if evicted == 0 || late == 0 {
		t.Fatalf("bounds never hit: evicted %d late %d", evicted, late)
	}
}

func diff(a, b map[string]bool) []string {
	var d []string
	for k := range a {
		if !b[k] {
			d = append(d, k)
		}
	}
	slices.Sort(d)
	return d
}

func invOfKey(k string) string {
	for i, ch := range k {
		if ch == ' ' || ch == '-' {
			return k[:i]
		}
	}
	return k
}
