package wire

import (
	"math/rand/v2"
	"runtime"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// gen makes random messages of every kind, nested ones included, with
// the edge values an encoding gets wrong: zero, small and huge integers,
// nil pointers to empty structs, empty slices (as nil: the encoding does
// not tell them apart).
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) u64() uint64 {
	switch g.r.IntN(5) {
	case 0:
		return 0
	case 1:
		return uint64(g.r.IntN(200))
	case 2:
		return ^uint64(0) - uint64(g.r.IntN(3))
	case 3:
		return 1 << g.r.IntN(64)
	default:
		return g.r.Uint64()
	}
}

func (g *gen) bytes(max int) []byte {
	n := g.r.IntN(max + 1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g *gen) digest() protocol.Digest {
	var d protocol.Digest
	if g.r.IntN(4) == 0 {
		return d
	}
	for i := range d {
		d[i] = byte(g.r.Uint32())
	}
	if g.r.IntN(4) == 0 {
		d = protocol.Digest{31: 1} // only the last byte set
	}
	return d
}

func (g *gen) request() protocol.Request {
	r := protocol.Request{Client: g.u64(), Timestamp: g.u64(), Op: g.bytes(40)}
	if n := g.r.IntN(5); n > 0 { // a client's authenticator, or none
		r.MACs = make([][]byte, n)
		for i := range r.MACs {
			r.MACs[i] = g.bytes(16)
		}
	}
	return r
}

func (g *gen) batch(max int) []protocol.Request {
	n := g.r.IntN(max + 1)
	if n == 0 {
		return nil
	}
	b := make([]protocol.Request, n)
	for i := range b {
		b[i] = g.request()
	}
	return b
}

func (g *gen) auth() protocol.Auth {
	var a protocol.Auth
	if n := g.r.IntN(6); n > 0 {
		a.MACs = make([][]byte, n)
		for i := range a.MACs {
			a.MACs[i] = g.bytes(32)
		}
	}
	a.Sig = g.bytes(64)
	return a
}

// message is a random message; depth bounds its nesting.
func (g *gen) message(depth int) protocol.Message {
	m := protocol.Message{
		Kind:   protocol.Kind(1 + g.r.IntN(10)),
		From:   protocol.ReplicaID(g.u64()),
		View:   protocol.View(g.u64()),
		Seq:    protocol.Seq(g.u64()),
		Digest: g.digest(),
		Auth:   g.auth(),
	}
	if g.r.IntN(20) == 0 {
		m.Kind = protocol.Kind(g.r.Uint32()) // unknown kinds encode too
	}
	// Any field may be set on any kind (a fault hook rewrites anything),
	// but mostly the kind's own.
	odd := func() bool { return g.r.IntN(8) == 0 }
	if m.Kind == protocol.KindPrePrepare || odd() {
		m.Batch = g.batch(6)
	}
	if m.Kind == protocol.KindRequest || odd() {
		r := g.request()
		if g.r.IntN(5) == 0 {
			r = protocol.Request{}
		}
		m.Request = &r
	}
	if m.Kind == protocol.KindReply || odd() {
		m.Reply = &protocol.Reply{Client: g.u64(), Timestamp: g.u64(), View: protocol.View(g.u64()), Result: g.bytes(20)}
	}
	if (m.Kind == protocol.KindViewChange || odd()) && depth > 0 {
		m.ViewChange = g.viewChange(depth - 1)
	}
	if (m.Kind == protocol.KindNewView || odd()) && depth > 0 {
		nv := &protocol.NewView{}
		if n := g.r.IntN(4); n > 0 {
			nv.ViewChanges = make([]protocol.Message, n)
			for i := range nv.ViewChanges {
				nv.ViewChanges[i] = g.message(depth - 1)
				nv.ViewChanges[i].Kind = protocol.KindViewChange
				if nv.ViewChanges[i].ViewChange == nil && depth > 1 {
					nv.ViewChanges[i].ViewChange = g.viewChange(depth - 2)
				}
			}
		}
		if n := g.r.IntN(4); n > 0 {
			nv.PrePrepares = make([]protocol.Message, n)
			for i := range nv.PrePrepares {
				nv.PrePrepares[i] = g.message(0)
				nv.PrePrepares[i].Kind = protocol.KindPrePrepare
			}
		}
		m.NewView = nv
	}
	if m.Kind == protocol.KindState || odd() {
		m.State = g.bytes(100)
	}
	return m
}

func (g *gen) viewChange(depth int) *protocol.ViewChange {
	vc := &protocol.ViewChange{Stable: protocol.Seq(g.u64()), StableDigest: g.digest()}
	if n := g.r.IntN(4); n > 0 {
		vc.Proof = make([]protocol.Message, n)
		for i := range vc.Proof {
			vc.Proof[i] = g.message(depth)
			vc.Proof[i].Kind = protocol.KindCheckpoint
		}
	}
	if n := g.r.IntN(4); n > 0 {
		vc.Prepared = make([]protocol.Prepared, n)
		for i := range vc.Prepared {
			p := protocol.Prepared{Seq: protocol.Seq(g.u64()), PView: protocol.View(g.u64()), PDigest: g.digest()}
			if k := g.r.IntN(3); k > 0 {
				p.Q = make([]protocol.PrePrepared, k)
				for j := range p.Q {
					p.Q[j] = protocol.PrePrepared{View: protocol.View(g.u64()), Digest: g.digest()}
				}
			}
			if k := g.r.IntN(3); k > 0 {
				p.Batches = make([]protocol.BatchOf, k)
				for j := range p.Batches {
					p.Batches[j] = protocol.BatchOf{Digest: g.digest(), Batch: g.batch(3)}
				}
			}
			vc.Prepared[i] = p
		}
	}
	return vc
}

// Real messages, as the protocol sends them (seeds for the fuzzer, the
// benchmark and the tests).

func prePrepare(requests, opSize int) protocol.Message {
	batch := make([]protocol.Request, requests)
	for i := range batch {
		op := make([]byte, opSize)
		for j := range op {
			op[j] = byte('a' + (i+j)%26)
		}
		batch[i] = protocol.Request{Client: 1000 + uint64(i%16), Timestamp: 1_700_000_000_000 + uint64(i), Op: op}
	}
	return protocol.Message{Kind: protocol.KindPrePrepare, From: 1, View: 5, Seq: 1234, Digest: protocol.BatchDigest(batch),
		Batch: batch, Auth: protocol.Auth{MACs: macs(4)}}
}

func macs(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, 16)
		for j := range out[i] {
			out[i][j] = byte(i*16 + j)
		}
	}
	return out
}

func sig(from int) []byte {
	s := make([]byte, 64)
	for i := range s {
		s[i] = byte(from + i)
	}
	return s
}

func checkpoint(from int, seq protocol.Seq) protocol.Message {
	return protocol.Message{Kind: protocol.KindCheckpoint, From: protocol.ReplicaID(from), Seq: seq,
		Digest: protocol.Digest{1, 2, 3}, Auth: protocol.Auth{Sig: sig(from)}}
}

func viewChange(from int, view protocol.View) protocol.Message {
	pp := prePrepare(2, 10)
	return protocol.Message{Kind: protocol.KindViewChange, From: protocol.ReplicaID(from), View: view,
		ViewChange: &protocol.ViewChange{Stable: 128, StableDigest: protocol.Digest{1, 2, 3},
			Proof: []protocol.Message{checkpoint(0, 128), checkpoint(1, 128), checkpoint(2, 128)},
			Prepared: []protocol.Prepared{{Seq: 129, PView: view - 1, PDigest: pp.Digest,
				Q:       []protocol.PrePrepared{{View: view - 1, Digest: pp.Digest}},
				Batches: []protocol.BatchOf{{Digest: pp.Digest, Batch: pp.Batch}}}}},
		Auth: protocol.Auth{Sig: sig(from)}}
}

func realMessages() []protocol.Message {
	req := protocol.Request{Client: 1001, Timestamp: 7, Op: []byte("put k v")}
	pp := prePrepare(3, 20)
	nvPP := prePrepare(1, 5)
	nvPP.Auth = protocol.Auth{}
	return []protocol.Message{
		{Kind: protocol.KindRequest, Request: &req, Auth: protocol.Auth{MACs: macs(4)}},
		pp,
		{Kind: protocol.KindPrepare, From: 2, View: 5, Seq: 1234, Digest: pp.Digest, Auth: protocol.Auth{MACs: macs(4)}},
		{Kind: protocol.KindCommit, From: 3, View: 5, Seq: 1234, Digest: pp.Digest, Auth: protocol.Auth{MACs: macs(4)}},
		checkpoint(1, 128),
		viewChange(2, 6),
		{Kind: protocol.KindNewView, From: 2, View: 6, NewView: &protocol.NewView{
			ViewChanges: []protocol.Message{viewChange(0, 6), viewChange(1, 6), viewChange(2, 6)},
			PrePrepares: []protocol.Message{nvPP}}, Auth: protocol.Auth{Sig: sig(2)}},
		{Kind: protocol.KindReply, From: 1, Reply: &protocol.Reply{Client: 1001, Timestamp: 7, View: 5, Result: []byte("ok")},
			Auth: protocol.Auth{MACs: macs(1)}},
		{Kind: protocol.KindFetch, From: 3, Seq: 128, Auth: protocol.Auth{MACs: macs(4)}},
		{Kind: protocol.KindState, From: 0, Seq: 128, Digest: protocol.Digest{9}, State: []byte("snapshot bytes"),
			Auth: protocol.Auth{Sig: sig(0)}},
	}
}

// runtimeBytes measures the bytes a function allocates.
type runtimeBytes struct{ bytes int }

func (r *runtimeBytes) measure(f func()) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	r.bytes = int(after.TotalAlloc - before.TotalAlloc)
}
