package pbft

import (
	"math/rand/v2"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// msgFaults is what a node's outgoing frames meet on their way to one
// peer: the message faults in force (components.MessageFault), applied
// in the node's loop, after authentication, so each frame is a real
// message, lost, doubled or moved as a network would.
type msgFaults struct {
	f   components.MessageFault
	rng *rand.Rand
	// held are frames waiting to be released in a shuffled order, per
	// receiver; at most f.Reorder each.
	held map[protocol.ReplicaID][][]byte
}

func newMsgFaults(f components.MessageFault, self protocol.ReplicaID) *msgFaults {
	return &msgFaults{f: f, rng: rand.New(rand.NewPCG(f.Seed, uint64(self))), held: map[protocol.ReplicaID][][]byte{}}
}

// out is what goes to peer to for frame: none, one or two frames, or a
// shuffled release of the held ones.
func (m *msgFaults) out(to protocol.ReplicaID, frame []byte) [][]byte {
	if m.f.Drop > 0 && m.rng.Float64() < m.f.Drop {
		return nil
	}
	frames := [][]byte{frame}
	if m.f.Duplicate > 0 && m.rng.Float64() < m.f.Duplicate {
		frames = append(frames, frame)
	}
	if m.f.Reorder < 2 {
		return frames
	}
	h := append(m.held[to], frames...)
	if len(h) < m.f.Reorder {
		m.held[to] = h
		return nil
	}
	m.rng.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
	delete(m.held, to)
	return h
}

// flush releases every held frame (at each tick, so reordering delays a
// message by at most a tick).
func (m *msgFaults) flush(send func(to protocol.ReplicaID, frame []byte)) {
	for to, h := range m.held {
		m.rng.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
		for _, f := range h {
			send(to, f)
		}
		delete(m.held, to)
	}
}

// SetMessageFaults implements components.MessageFaults.
func (c *Cluster) SetMessageFaults(id string, f components.MessageFault) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	return n.setMessageFaults(f)
}

func (n *node) setMessageFaults(f components.MessageFault) error {
	if f == (components.MessageFault{}) {
		n.msgFaults.Store(nil)
		return nil
	}
	n.msgFaults.Store(newMsgFaults(f, n.id))
	return nil
}
