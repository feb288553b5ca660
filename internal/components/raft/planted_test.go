package raft

import (
	"context"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/check"
)

// TestCheckerCatchesPlantedLostWrite drives the real cluster under load
// with the streaming checker cutting windows as it goes: clean, it finds
// nothing; with a planted bug that acknowledges some puts without applying
// them, it reports illegal windows.
func TestCheckerCatchesPlantedLostWrite(t *testing.T) {
	c, _ := testCluster(t, 3, nil, defaultOptions())
	run := func(plant uint64) check.Results {
		lin, err := check.NewLinearizability(check.LinearizabilityOptions{Component: "raft",
			InitialAbsent: plant == 0, // the planted run reuses keys the clean run wrote
			Window:        300 * time.Millisecond, MaxOpDuration: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := lin.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.SetRecorder(lin) // the checker is the recorder, as in the daemon
		c.loseWritesEvery.Store(plant)
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		runLoad(ctx, c, 6, 12).Wait()
		c.SetRecorder(nil)
		c.loseWritesEvery.Store(0)
		if err := lin.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		return lin.Results()
	}
	waitFor(t, 5*time.Second, func() bool { return leaderID(c, 0) != "" })
	clean := run(0)
	t.Logf("clean: %+v", clean)
	if clean.Illegal != 0 || clean.OK == 0 || clean.Windows < 3 || clean.Dropped != 0 {
		t.Fatalf("clean run: %+v %+v", clean, clean.LastViolation)
	}
	planted := run(25)
	t.Logf("planted lost writes: %+v, last violation %+v", planted, planted.LastViolation)
	if planted.Illegal == 0 {
		t.Fatalf("lost writes not caught: %+v", planted)
	}
}
