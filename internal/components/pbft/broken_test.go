package pbft

import (
	"strings"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/byzantine"
)

// agreementBroken runs load until an agreement violation is counted.
func agreementBroken(t *testing.T, tc *testCluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tc.load(t, 3, 500*time.Millisecond)
		if strings.Contains(tc.violations(), "pbft_agreement") {
			t.Logf("caught: %s", tc.violations())
			return
		}
	}
	t.Fatalf("no agreement violation: %s; %s", tc.violations(), tc.Summary().(Summary).Line)
}

// f+1 colluding Byzantine replicas (allowed only with allow_beyond_f)
// make two correct replicas execute different batches at one sequence
// number; the agreement checker catches it.
func TestColludingEquivocatorsAreCaught(t *testing.T) {
	tc := startCluster(t, 4)
	col := byzantine.NewCollusion(0, 2)
	if err := tc.SetBehavior("node-1", col.Primary()); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetBehavior("node-2", col.Accomplice()); err != nil {
		t.Fatal(err)
	}
	agreementBroken(t, tc)
}

// The planted bug: prepare and commit quorums too small (f and f+1 instead
// of 2f and 2f+1); one equivocating primary then splits the correct
// replicas, and the agreement checker catches it.
func TestBrokenQuorumIsCaught(t *testing.T) {
	tc := startCluster(t, 4, func(c *Cluster) { c.unsafeQuorum = [2]int{c.f, c.f + 1} })
	if err := tc.SetBehavior("node-1", byzantine.NewCollusion(0, 2).Primary()); err != nil {
		t.Fatal(err)
	}
	agreementBroken(t, tc)
}
