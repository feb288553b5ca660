package pbft

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/auth"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
	"github.com/soakd/soakd/internal/netutil"
)

const (
	// tickInterval is the core's logical tick.
	tickInterval = 10 * time.Millisecond
	// inboxSize bounds the messages waiting for a node's loop; past it a
	// message is dropped and counted (PBFT recovers from loss).
	inboxSize = 8192
	// maxFrame bounds one incoming message.
	maxFrame = 16 << 20
	addrFile = "addr"
	// listenRetries and listenRetryDelay bound the wait for a restarting
	// node's old port.
	listenRetries    = 20
	listenRetryDelay = 100 * time.Millisecond
	// bindRetries bounds the wait for a node process's own address: a
	// pod's DNS name may not resolve to it for a while after it starts.
	bindRetries = 300
)

// inbound is a message for a node's loop: from a peer link (already
// authenticated) or a client.
type inbound struct {
	msg protocol.Message
}

// node is one replica: the core, driven by one loop goroutine, with a
// listener for its peers, a writer per peer, and its disk.
type node struct {
	env  *replicaEnv
	id   protocol.ReplicaID
	name string
	dir  string
	log  *slog.Logger
	// bindAddr, when set, is the node's fixed address (a node process's,
	// which its peers are given); else it keeps the one it got first.
	bindAddr string

	// behavior is the Byzantine fault in force on the node's sends (nil:
	// correct).
	behavior atomic.Pointer[byzBox]
	// msgFaults are the message faults on its links (nil: none); used by
	// the loop only, swapped whole.
	msgFaults atomic.Pointer[msgFaults]
	// wantTwin asks the loop to run a twin (twin.go); twin is the loop's.
	wantTwin atomic.Bool
	twin     *protocol.Replica

	mu       sync.Mutex
	running  bool
	ln       net.Listener
	addr     string
	peers    map[protocol.ReplicaID]*peer
	conns    map[net.Conn]struct{}
	inbox    chan inbound
	quit     chan struct{}
	loopDone chan struct{}
	wg       sync.WaitGroup
	status   protocol.Status
	store    *storage
	pending  []protocol.Checkpoint // taken, not yet stable
	since    []protocol.Committed  // executed after the stable checkpoint
}

type byzBox struct{ b byzantine.Behavior }

func newNode(env *replicaEnv, i int, stateDir string) *node {
	name := replicaName(i)
	return &node{env: env, id: protocol.ReplicaID(i), name: name, dir: filepath.Join(stateDir, name),
		log: env.log.With("node", name)}
}

// replicaName is replica i's node id: node-1 .. node-n.
func replicaName(i int) string { return fmt.Sprintf("node-%d", i+1) }

// Addr is where the node listens ("" while down).
func (n *node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return ""
	}
	return n.addr
}

// start recovers the node from its disk and runs it.
func (n *node) start() error {
	store, err := openStorage(n.dir)
	if err != nil {
		return err
	}
	cp, after, err := store.recover()
	if err != nil {
		_ = store.close()
		return err
	}
	r, err := protocol.NewReplica(n.env.replicaConfig(n.id, n.env.newApp()))
	if err != nil {
		_ = store.close()
		return err
	}
	if cp != nil || len(after) > 0 {
		var c protocol.Checkpoint
		if cp != nil {
			c = *cp
		}
		if err := r.Restore(c, after); err != nil {
			_ = store.close()
			return fmt.Errorf("pbft: %s: restore: %w", n.name, err)
		}
		n.env.sink.restored(n.id, c.Seq)
	}
	ln, err := n.listen()
	if err != nil {
		_ = store.close()
		return err
	}
	n.mu.Lock()
	n.ln, n.addr, n.running, n.store = ln, ln.Addr().String(), true, store
	n.since = after
	n.pending = nil
	n.inbox = make(chan inbound, inboxSize)
	n.quit = make(chan struct{})
	n.conns = map[net.Conn]struct{}{}
	n.peers = map[protocol.ReplicaID]*peer{}
	for j := range n.env.n {
		if j == int(n.id) {
			continue
		}
		addr := func() string { return n.env.peerAddr(j) }
		n.peers[protocol.ReplicaID(j)] = newPeer(n.name, replicaName(j), addr, n.env.dial, n.env.m.dropped.WithLabelValues("queue-full").Inc)
	}
	n.status = r.Status()
	n.mu.Unlock()
	loopDone := make(chan struct{})
	n.loopDone = loopDone
	n.wg.Go(func() { n.accept(ln) })
	n.wg.Go(func() {
		defer close(loopDone)
		n.loop(r)
	})
	return nil
}

// listen binds the node's port from its last incarnation when it has one,
// so its peers find it where they left it.
func (n *node) listen() (net.Listener, error) {
	if err := os.MkdirAll(n.dir, 0o750); err != nil {
		return nil, err
	}
	path := filepath.Join(n.dir, addrFile)
	addr := "127.0.0.1:0"
	if n.bindAddr != "" {
		addr = n.bindAddr
	} else if b, err := os.ReadFile(path); err == nil {
		addr = strings.TrimSpace(string(b))
	}
	var ln net.Listener
	var err error
	retries := listenRetries
	if n.bindAddr != "" {
		retries = bindRetries
	}
	for range retries {
		if ln, err = net.Listen("tcp", addr); err == nil || !retryListen(err) {
			break
		}
		time.Sleep(listenRetryDelay)
	}
	if err != nil {
		return nil, fmt.Errorf("pbft: %s: listen: %w", n.name, err)
	}
	if err := os.WriteFile(path, []byte(ln.Addr().String()), 0o640); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln, nil
}

// retryListen: the port is still held (a restarting node's), or the
// address is not this host's yet (a pod's name resolving late).
func retryListen(err error) bool {
	var dns *net.DNSError
	return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.As(err, &dns)
}

// halt stops the node abruptly: loop, links and listener; what is not on
// disk is lost.
func (n *node) halt() {
	n.mu.Lock()
	if !n.running {
		n.mu.Unlock()
		return
	}
	n.running = false
	close(n.quit)
	_ = n.ln.Close()
	for c := range n.conns {
		_ = c.Close()
	}
	peers, loopDone := n.peers, n.loopDone
	n.mu.Unlock()
	// The loop may be sending a Ready: the links close after it stops.
	<-loopDone
	for _, p := range peers {
		p.close()
	}
	n.wg.Wait()
	_ = n.store.close()
}

func (n *node) accept(ln net.Listener) {
	for {
		c, err := netutil.Accept(ln, nil)
		if err != nil {
			return // the listener is closed
		}
		n.mu.Lock()
		if !n.running {
			n.mu.Unlock()
			_ = c.Close()
			return
		}
		n.conns[c] = struct{}{}
		n.mu.Unlock()
		n.wg.Go(func() { n.read(c) })
	}
}

// read authenticates a peer link's messages and hands them to the loop.
func (n *node) read(c net.Conn) {
	defer func() {
		_ = c.Close()
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
	}()
	fr := wire.NewFrameReader(c, maxFrame)
	for {
		b, err := fr.Next()
		if err != nil {
			return
		}
		m, err := wire.Decode(b)
		if err != nil {
			n.env.m.rejected.WithLabelValues("malformed").Inc()
			continue
		}
		if err := n.env.keys.Verify(n.env.mode, &m, n.id); err != nil {
			n.env.m.rejected.WithLabelValues(authReason(err)).Inc()
			continue
		}
		// Every request a message orders must come from its client.
		if err := n.env.keys.VerifyRequests(&m, n.id); err != nil {
			n.env.m.rejected.WithLabelValues("bad-request").Inc()
			continue
		}
		n.deliver(inbound{msg: m})
	}
}

func authReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrBadMAC):
		return "bad-mac"
	case errors.Is(err, auth.ErrBadSignature):
		return "bad-signature"
	}
	return "bad-auth"
}

// deliver queues a message for the loop, dropping it when the inbox is
// full or the node is down.
func (n *node) deliver(in inbound) {
	n.mu.Lock()
	inbox, running := n.inbox, n.running
	n.mu.Unlock()
	if !running {
		return
	}
	select {
	case inbox <- in:
	default:
		n.env.m.dropped.WithLabelValues("inbox-full").Inc()
	}
}

// loop owns the core: every message, tick and its Ready are handled here,
// one at a time.
func (n *node) loop(r *protocol.Replica) {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case in := <-n.inbox:
			if err := r.Step(in.msg); err != nil {
				n.env.m.rejected.WithLabelValues(rejectReason(err)).Inc()
			}
			n.twinStep(&in)
		case <-t.C:
			r.Tick()
			n.twinStep(nil)
			if mf := n.msgFaults.Load(); mf != nil {
				mf.flush(n.transmit)
			}
		}
		if r.HasReady() {
			if err := n.handle(r.Ready()); err != nil {
				n.log.Error("pbft node stopped: its disk failed", "err", err)
				return
			}
		}
		st := r.Status()
		n.mu.Lock()
		if st.View > n.status.View {
			n.env.m.viewChanges.WithLabelValues(n.name).Inc()
		}
		n.status = st
		n.mu.Unlock()
	}
}

func rejectReason(err error) string {
	var rej *protocol.Rejected
	if errors.As(err, &rej) {
		return rej.Reason
	}
	return "other"
}

// handle acts on a Ready: what was executed is made durable before any
// reply or message that follows from it leaves.
func (n *node) handle(rd protocol.Ready) error {
	if len(rd.Committed) > 0 {
		if err := n.store.appendExecuted(rd.Committed); err != nil {
			return err
		}
		n.since = append(n.since, rd.Committed...)
		if err := n.store.sync(); err != nil {
			return err
		}
		n.env.sink.executed(n.id, rd.Committed)
	}
	n.pending = append(n.pending, rd.Checkpoints...)
	for _, cp := range rd.Checkpoints {
		n.env.sink.checkpointed(n.id, cp, 0)
	}
	if rd.Stable > 0 {
		n.env.sink.checkpointed(n.id, protocol.Checkpoint{}, rd.Stable)
	}
	if rd.Stable > n.store.stable {
		if err := n.stabilize(rd.Stable); err != nil {
			return err
		}
	}
	for _, e := range rd.Messages {
		n.sendSide(e, n.side())
	}
	for _, m := range rd.Replies {
		n.env.sink.reply(n.id, m)
	}
	return nil
}

// stabilize persists the stable checkpoint and drops what it covers.
func (n *node) stabilize(stable protocol.Seq) error {
	var cp *protocol.Checkpoint
	keep := n.pending[:0]
	for _, p := range n.pending {
		switch {
		case p.Seq == stable:
			c := p
			cp = &c
		case p.Seq > stable:
			keep = append(keep, p)
		}
	}
	n.pending = keep
	if cp == nil {
		return nil // stable by state transfer: the core restored it; the next checkpoint persists
	}
	after := n.since[:0]
	for _, c := range n.since {
		if c.Seq > stable {
			after = append(after, c)
		}
	}
	n.since = after
	return n.store.stabilize(*cp, after)
}

// sendSide authenticates and writes a message to its receivers on side
// (all of them but while a twin runs), through the node's Byzantine
// behaviour when one is in force.
func (n *node) sendSide(e protocol.Envelope, side int) {
	n.env.m.sent.WithLabelValues(e.Msg.Kind.String()).Inc()
	var to []protocol.ReplicaID
	if e.All {
		for j := range n.env.n {
			if j != int(n.id) && onSide(side, protocol.ReplicaID(j)) {
				to = append(to, protocol.ReplicaID(j))
			}
		}
	} else if onSide(side, e.To) {
		to = []protocol.ReplicaID{e.To}
	}
	n.sealNested(&e.Msg)
	b := n.behavior.Load()
	if b == nil { // one authenticator (MACs for every receiver) and one encoding for all
		m := e.Msg
		n.env.keys.Authenticate(n.env.mode, &m)
		frame := wire.Append(nil, &m)
		for _, dst := range to {
			n.link(dst, frame)
		}
		return
	}
	for _, dst := range to {
		for _, o := range b.b.Outgoing(byzantine.Out{To: dst, Msg: e.Msg}) {
			m := o.Msg
			n.env.keys.Authenticate(n.env.mode, &m)
			if o.Forge {
				auth.Forge(&m)
			}
			n.link(o.To, wire.Append(nil, &m))
		}
	}
}

// sealNested signs this replica's own messages nested in a view change
// (its checkpoints) or a new view (its view change): the core keeps its
// own copies unsigned, and receivers check every nested signature. It
// copies what it signs: the core's messages are not changed.
func (n *node) sealNested(m *protocol.Message) {
	if vc := m.ViewChange; vc != nil && len(vc.Proof) > 0 {
		cp := *vc
		cp.Proof = slices.Clone(vc.Proof)
		for i := range cp.Proof {
			n.seal(&cp.Proof[i])
		}
		m.ViewChange = &cp
	}
	if nv := m.NewView; nv != nil && len(nv.ViewChanges) > 0 {
		cp := *nv
		cp.ViewChanges = slices.Clone(nv.ViewChanges)
		for i := range cp.ViewChanges {
			if cp.ViewChanges[i].From == n.id {
				n.sealNested(&cp.ViewChanges[i])
				n.seal(&cp.ViewChanges[i])
			}
		}
		m.NewView = &cp
	}
}

func (n *node) seal(m *protocol.Message) {
	if m.From == n.id && len(m.Auth.Sig) == 0 {
		n.env.keys.Authenticate(n.env.mode, m)
	}
}

// link sends a frame to a peer through the message faults in force.
func (n *node) link(to protocol.ReplicaID, frame []byte) {
	mf := n.msgFaults.Load()
	if mf == nil {
		n.transmit(to, frame)
		return
	}
	for _, f := range mf.out(to, frame) {
		n.transmit(to, f)
	}
}

func (n *node) transmit(to protocol.ReplicaID, frame []byte) {
	if p := n.peers[to]; p != nil {
		p.send(frame)
	}
}

// The replica interface, for a node in this process.

func (n *node) Name() string { return n.name }

func (n *node) stop(bool) { n.halt() }

func (n *node) state() (bool, protocol.Status) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running, n.status
}

func (n *node) request(m protocol.Message) { n.deliver(inbound{msg: m}) }

func (n *node) setBehavior(b byzantine.Behavior) error {
	switch {
	case b == nil:
		n.behavior.Store(nil)
		n.wantTwin.Store(false)
	case byzantine.IsTwin(b.Name()):
		n.wantTwin.Store(true) // the loop runs a second copy (twin.go)
	default:
		n.behavior.Store(&byzBox{b: b})
	}
	return nil
}

func (n *node) stateDir() string { return n.dir }

func (n *node) listenAddr() string { return n.Addr() }
