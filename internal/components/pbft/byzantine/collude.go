package byzantine

import (
	"sync"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// maxCollusionSeqs bounds what a collusion remembers.
const maxCollusionSeqs = 4096

// Collusion is f+1 Byzantine replicas splitting the correct ones, beyond
// what PBFT tolerates: the primary sends its real batch to one replica
// (Left) and the batch without its last request to the others, and the
// accomplices back each receiver's version with their prepares and
// commits (the real one to Left and to the primary, so the primary
// prepares it and commits, splitting its own commits the same way). Two
// correct replicas then execute different batches at one sequence number:
// it exists to prove that the agreement checker catches that
// (faults.allow_beyond_f). Its behaviours are safe for concurrent use.
type Collusion struct {
	mu      sync.Mutex
	left    protocol.ReplicaID
	primary protocol.ReplicaID
	alt     map[protocol.Seq][2]protocol.Digest // real, alternative
}

// NewCollusion splits the replicas the primary of view 0 leads around left.
func NewCollusion(primary, left protocol.ReplicaID) *Collusion {
	return &Collusion{primary: primary, left: left, alt: map[protocol.Seq][2]protocol.Digest{}}
}

// Primary is the colluding primary's behaviour.
func (c *Collusion) Primary() Behavior { return colluder{c: c, primary: true} }

// Accomplice is a colluding backup's behaviour.
func (c *Collusion) Accomplice() Behavior { return colluder{c: c} }

type colluder struct {
	c       *Collusion
	primary bool
}

func (r colluder) Name() string { return "collude" }

func (r colluder) Outgoing(o Out) []Out {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	m := o.Msg
	switch m.Kind {
	case protocol.KindPrePrepare:
		if !r.primary || len(m.Batch) == 0 {
			return []Out{o}
		}
		alt := m.Batch[:len(m.Batch)-1]
		if len(c.alt) >= maxCollusionSeqs {
			clear(c.alt)
		}
		c.alt[m.Seq] = [2]protocol.Digest{m.Digest, protocol.BatchDigest(alt)}
		if o.To != c.left {
			m.Batch, m.Digest = alt, protocol.BatchDigest(alt)
		}
	case protocol.KindPrepare, protocol.KindCommit:
		d, ok := c.alt[m.Seq]
		if !ok {
			return []Out{o}
		}
		m.Digest = d[1]
		if o.To == c.left || (!r.primary && o.To == c.primary) {
			m.Digest = d[0]
		}
	}
	o.Msg = m
	return []Out{o}
}
