package protocol

import (
	"testing"
)

func TestFaultFree(t *testing.T) {
	for _, n := range []int{4, 7} {
		for seed := range uint64(3) {
			s := newSim(t, simOptions{n: n, seed: seed, clients: 5, requests: 40, maxDelay: 2,
				config: func(c *Config) { c.BatchSize = 4; c.CheckpointInterval = 8 }})
			if !s.run(2000) {
				t.Fatalf("n=%d seed=%d: clients not done after %d ticks", n, seed, s.now)
			}
			// Let the stragglers finish the last batches.
			for range 50 {
				s.step()
			}
			s.checkSafety()
			last := s.reps[0].Status().LastExecuted
			for i, r := range s.reps {
				st := r.Status()
				if st.View != 0 || st.LastExecuted != last {
					t.Errorf("n=%d seed=%d replica %d: %+v, want view 0, last executed %d", n, seed, i, st, last)
				}
				if len(s.commits[i]) != int(last) {
					t.Errorf("replica %d executed %d batches, want %d", i, len(s.commits[i]), last)
				}
			}
			if len(s.ckpts) == 0 {
				t.Errorf("no checkpoints")
			}
			t.Logf("n=%d seed=%d: %d seqs in %d ticks, rejects %v", n, seed, last, s.now, s.rejects)
		}
	}
}

func TestDeterministic(t *testing.T) {
	run := func(seed uint64) (string, string) {
		s := newSim(t, simOptions{n: 4, seed: seed, clients: 4, requests: 30, maxDelay: 3, drop: 0.01,
			config: func(c *Config) { c.BatchSize = 3; c.CheckpointInterval = 4 }})
		s.run(5000)
		return string(s.trace.Sum(nil)), s.commitLogHash()
	}
	t1, c1 := run(7)
	t2, c2 := run(7)
	if t1 != t2 || c1 != c2 {
		t.Fatalf("same seed, different runs")
	}
	if t3, _ := run(8); t3 == t1 {
		t.Fatalf("different seeds, same trace")
	}
}

func TestPrimaryCrash(t *testing.T) {
	for _, n := range []int{4, 7} {
		s := newSim(t, simOptions{n: n, seed: 3, clients: 4, requests: 60, maxDelay: 2,
			config: func(c *Config) { c.BatchSize = 2; c.CheckpointInterval = 4 }})
		s.run(60)
		before := s.reps[1].Status().LastExecuted
		s.down[0] = true
		if !s.run(1500) {
			t.Fatalf("n=%d: not done after the primary crashed: %+v, rejects %v", n, s.reps[1].Status(), s.rejects)
		}
		s.checkSafety()
		st := s.reps[1].Status()
		if st.View == 0 || st.LastExecuted <= before {
			t.Errorf("n=%d: no view change or no progress: %+v (before %d)", n, st, before)
		}
		t.Logf("n=%d: view %d, %d seqs, %d ticks", n, st.View, st.LastExecuted, s.now)
	}
}

func TestSilentBackup(t *testing.T) {
	s := newSim(t, simOptions{n: 4, seed: 11, clients: 4, requests: 50, maxDelay: 2,
		config: func(c *Config) { c.BatchSize = 2; c.CheckpointInterval = 4 }})
	s.down[3] = true
	if !s.run(2000) {
		t.Fatalf("not done with a silent backup")
	}
	s.checkSafety()
	if v := s.reps[1].Status().View; v != 0 {
		t.Errorf("view %d, want 0: a silent backup needs no view change", v)
	}
}

func TestPartitionedReplicaCatchesUp(t *testing.T) {
	s := newSim(t, simOptions{n: 4, seed: 5, clients: 4, requests: 150, maxDelay: 2,
		config: func(c *Config) { c.BatchSize = 1; c.CheckpointInterval = 4 }})
	s.run(20)
	isolated := false
	s.cut = func(from, to int) bool { return isolated && (from == 3 || to == 3) }
	isolated = true
	start := s.reps[3].Status().LastExecuted
	s.run(300)
	if got := s.reps[0].Status().LowWatermark; got < start+3*s.reps[0].l {
		t.Fatalf("others did not move on: stable %d", got)
	}
	isolated = false
	if !s.run(3000) {
		t.Fatalf("not done")
	}
	for range 100 {
		s.step()
	}
	s.checkSafety()
	lagger, leader := s.reps[3].Status(), s.reps[0].Status()
	if s.transfer[3] == 0 || lagger.LastExecuted < leader.LowWatermark {
		t.Errorf("replica 3 did not catch up by state transfer: %+v (%d transfers), replica 0 %+v", lagger, s.transfer[3], leader)
	}
	t.Logf("replica 3: %+v after %d transfers; replica 0: %+v", lagger, s.transfer[3], leader)
}

func TestCheckpointGCBounded(t *testing.T) {
	s := newSim(t, simOptions{n: 4, seed: 2, clients: 8, requests: 650, maxDelay: 1,
		config: func(c *Config) { c.BatchSize = 1; c.CheckpointInterval = 16 }})
	peak := 0
	for range 20000 {
		if s.done() {
			break
		}
		s.step()
		for _, r := range s.reps {
			peak = max(peak, r.Status().Certificates)
		}
	}
	s.checkSafety()
	st := s.reps[0].Status()
	if st.LastExecuted < 5000 {
		t.Fatalf("executed %d seqs, want 5000", st.LastExecuted)
	}
	l := int(s.reps[0].l)
	if peak > l+l/16+2 {
		t.Errorf("certificates peaked at %d, want about L = %d", peak, l)
	}
	for i, r := range s.reps {
		if len(r.replies) > 8 || len(r.ckpts) > 3 || len(r.latestCkpt) > 4 {
			t.Errorf("replica %d: replies %d, checkpoints %d", i, len(r.replies), len(r.ckpts))
		}
	}
	t.Logf("%d seqs, %d ticks, certificates peak %d", st.LastExecuted, s.now, peak)
}

// TestLossy: messages get lost (no retransmission but the replicas' own):
// view changes and state transfer must keep the service going.
func TestLossy(t *testing.T) {
	for seed := range uint64(40) {
		s := newSim(t, simOptions{n: 4 + 3*int(seed%2), seed: seed, clients: 4, requests: 40, maxDelay: 3, drop: 0.02 + 0.01*float64(seed%3),
			config: func(c *Config) { c.BatchSize = 2; c.CheckpointInterval = 4 }})
		ok := s.run(20000)
		s.checkSafety()
		if !ok {
			for i, r := range s.reps {
				t.Logf("replica %d: %+v", i, r.Status())
			}
			t.Fatalf("seed %d: not done after %d ticks; rejects %v", seed, s.now, s.rejects)
		}
		t.Logf("seed %d: %d ticks, view %d, transfers %v", seed, s.now, s.reps[0].Status().View, s.transfer)
	}
}
