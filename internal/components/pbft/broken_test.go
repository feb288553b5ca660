package pbft

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// split is a primary that sends the real batch to one backup (left) and
// a shorter one to the others, and a colluding backup that backs each
// receiver's version with its prepares and commits: f+1 Byzantine
// replicas, beyond what PBFT tolerates.
type split struct {
	mu   sync.Mutex
	left protocol.ReplicaID
	alt  map[protocol.Seq][2]protocol.Digest // real, alternative
}

type splitRole struct {
	s       *split
	primary bool
}

func (r splitRole) Name() string { return "split" }

func (r splitRole) Outgoing(o byzantine.Out) []byzantine.Out {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	m := o.Msg
	switch m.Kind {
	case protocol.KindPrePrepare:
		if !r.primary || len(m.Batch) == 0 {
			return []byzantine.Out{o}
		}
		real := m.Digest
		alt := m.Batch[:len(m.Batch)-1]
		s.alt[m.Seq] = [2]protocol.Digest{real, protocol.BatchDigest(alt)}
		if len(s.alt) > 4096 {
			clear(s.alt)
		}
		if o.To != s.left {
			m.Batch, m.Digest = alt, protocol.BatchDigest(alt)
		}
	case protocol.KindPrepare, protocol.KindCommit:
		d, ok := s.alt[m.Seq]
		if !ok {
			return []byzantine.Out{o}
		}
		// The primary's and left's copies are the real batch: the
		// primary then prepares it and sends its own commits, which it
		// splits like its pre-prepares.
		m.Digest = d[1]
		if o.To == s.left || (!r.primary && o.To == 0) {
			m.Digest = d[0]
		}
	}
	o.Msg = m
	return []byzantine.Out{o}
}

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
	s := &split{left: 2, alt: map[protocol.Seq][2]protocol.Digest{}}
	if err := tc.SetBehavior("node-1", splitRole{s: s, primary: true}); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetBehavior("node-2", splitRole{s: s}); err != nil {
		t.Fatal(err)
	}
	agreementBroken(t, tc)
}

// The planted bug: prepare and commit quorums too small (f and f+1 instead
// of 2f and 2f+1); one equivocating primary then splits the correct
// replicas, and the agreement checker catches it.
func TestBrokenQuorumIsCaught(t *testing.T) {
	tc := startCluster(t, 4, func(c *Cluster) { c.unsafeQuorum = [2]int{c.f, c.f + 1} })
	s := &split{left: 2, alt: map[protocol.Seq][2]protocol.Digest{}}
	if err := tc.SetBehavior("node-1", splitRole{s: s, primary: true}); err != nil {
		t.Fatal(err)
	}
	agreementBroken(t, tc)
}
