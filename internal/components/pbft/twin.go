package pbft

import (
	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// Twins (Bano et al., "Twins: BFT Systems Made Robust"): a Byzantine
// replica as a second copy of a correct one, with the same identity and
// keys, each copy talking to its own share of the peers. Every copy runs
// the correct protocol; together they can equivocate, which a correct
// peer cannot tell from one faulty replica. The node's loop runs the twin
// beside its own core: both get every message and tick; while the twin
// runs, the original sends only to the peers on its side (the even
// replica ids besides its own) and the twin to the others. The twin
// starts empty and catches up by the protocol (state transfer); its
// executions are neither persisted nor checked: the replica counts as
// Byzantine while it runs.

// sides of a node's peers while a twin runs.
const (
	sideAll = iota
	sideOriginal
	sideTwin
)

// onSide reports whether peer j gets the messages of the given side.
func onSide(side int, j protocol.ReplicaID) bool {
	switch side {
	case sideOriginal:
		return j%2 == 0
	case sideTwin:
		return j%2 == 1
	}
	return true
}

// twinStep syncs the twin with the wanted state (started or stopped) and
// feeds it what the original got: an inbound message (nil: a tick).
func (n *node) twinStep(in *inbound) {
	want := n.wantTwin.Load()
	switch {
	case want && n.twin == nil:
		r, err := protocol.NewReplica(n.env.replicaConfig(n.id, n.env.newApp()))
		if err != nil {
			n.log.Error("starting a twin", "err", err)
			return
		}
		n.twin = r
	case !want && n.twin != nil:
		n.twin = nil // its state is dropped, as a stopped Byzantine copy's
		return
	}
	if n.twin == nil {
		return
	}
	if in != nil {
		_ = n.twin.Step(in.msg)
	} else {
		n.twin.Tick()
	}
	if n.twin.HasReady() {
		rd := n.twin.Ready()
		for _, e := range rd.Messages {
			n.sendSide(e, sideTwin)
		}
		for _, m := range rd.Replies {
			n.env.sink.reply(n.id, m)
		}
	}
}

// side is the peers the original's messages go to now.
func (n *node) side() int {
	if n.twin != nil {
		return sideOriginal
	}
	return sideAll
}
