package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/components/pbft/wire"
)

// MACSize is the length of one MAC: HMAC-SHA256 truncated to 16 bytes.
const MACSize = 16

// Mode says which messages are signed.
type Mode int

const (
	// MACs (the default): normal-case messages carry an authenticator,
	// one MAC per receiving replica; the kinds that are passed on as proof
	// (protocol.Kind.Signed) carry an Ed25519 signature.
	MACs Mode = iota
	// Signatures: every replica message is signed (replies too; a
	// client's request still carries MACs, clients having no key pair).
	Signatures
)

func (m Mode) String() string {
	switch m {
	case MACs:
		return "macs"
	case Signatures:
		return "signatures"
	}
	return fmt.Sprintf("mode-%d", int(m))
}

// ParseMode parses "macs" or "signatures".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "macs", "":
		return MACs, nil
	case "signatures":
		return Signatures, nil
	}
	return 0, fmt.Errorf("auth: unknown mode %q (want macs or signatures)", s)
}

// signed reports whether a message of kind k carries a signature in mode.
func (m Mode) signed(k protocol.Kind) bool {
	return k.Signed() || (m == Signatures && k != protocol.KindRequest)
}

// The reasons Verify rejects a message (errors.Is; the error says more).
var (
	ErrBadMAC       = errors.New("auth: bad MAC")
	ErrBadSignature = errors.New("auth: bad signature")
)

// Keys are a run's keys. They are immutable: safe for concurrent use.
type Keys struct {
	seed uint64
	n    int
	priv []ed25519.PrivateKey
	pub  []ed25519.PublicKey
	pair [][32]byte // n×n, symmetric: pair[a*n+b]
}

// NewKeys derives the keys of a run with seed and n replicas: the same
// arguments give the same keys in every process. Replica r's Ed25519 key
// is NewKeyFromSeed(SHA-256(seed, r, "pbft-ed25519")); the MAC key of
// replicas a and b is SHA-256(seed, min(a,b), max(a,b), "pbft-mac")
// (integers as 8 bytes big-endian).
func NewKeys(seed uint64, n int) *Keys {
	if n < 1 || n > wire.MaxMACs {
		panic(fmt.Sprintf("auth: %d replicas (want 1..%d)", n, wire.MaxMACs))
	}
	k := &Keys{seed: seed, n: n, priv: make([]ed25519.PrivateKey, n), pub: make([]ed25519.PublicKey, n),
		pair: make([][32]byte, n*n)}
	for r := range n {
		edSeed := derive(seed, uint64(r), 0, false, "pbft-ed25519")
		k.priv[r] = ed25519.NewKeyFromSeed(edSeed[:])
		k.pub[r] = k.priv[r].Public().(ed25519.PublicKey)
		for s := r; s < n; s++ {
			key := derive(seed, uint64(r), uint64(s), true, "pbft-mac")
			k.pair[r*n+s], k.pair[s*n+r] = key, key
		}
	}
	return k
}

func derive(seed, a, b uint64, two bool, label string) [32]byte {
	buf := make([]byte, 0, 24+len(label))
	buf = binary.BigEndian.AppendUint64(buf, seed)
	buf = binary.BigEndian.AppendUint64(buf, a)
	if two {
		buf = binary.BigEndian.AppendUint64(buf, b)
	}
	return sha256.Sum256(append(buf, label...))
}

// N is the number of replicas.
func (k *Keys) N() int { return k.n }

// Public is replica r's Ed25519 public key (nil when r >= N).
func (k *Keys) Public(r protocol.ReplicaID) ed25519.PublicKey {
	if int64(r) >= int64(k.n) {
		return nil
	}
	return k.pub[r]
}

// PairKey is the MAC key replicas a and b share; PairKey(a, b) ==
// PairKey(b, a). Both must be below N.
func (k *Keys) PairKey(a, b protocol.ReplicaID) [32]byte { return k.pair[int(a)*k.n+int(b)] }

// ClientKey is the MAC key client and replica share:
// SHA-256(seed, client, replica, "pbft-client-mac").
func (k *Keys) ClientKey(client uint64, replica protocol.ReplicaID) [32]byte {
	return derive(k.seed, client, uint64(replica), true, "pbft-client-mac")
}

func (k *Keys) replica(r protocol.ReplicaID) bool { return int64(r) < int64(k.n) }

// Authenticate sets m.Auth for its sender: m.From's signature or
// authenticator by mode and kind; for a request the client's MACs for
// every replica (keys ClientKey(m.Request.Client, r)); for a reply in
// mode MACs one MAC for its client (ClientKey(m.Reply.Client, m.From)).
// A message Authenticate cannot authenticate (a sender out of range, a
// request or reply without its payload) gets an empty Auth, which no
// receiver accepts. Call it last: any later change to m breaks it.
func (k *Keys) Authenticate(mode Mode, m *protocol.Message) {
	m.Auth = protocol.Auth{}
	buf := signable(m)
	defer release(buf)
	s := *buf
	switch {
	case m.Kind == protocol.KindRequest:
		if m.Request == nil {
			return
		}
		d := sha256.Sum256(s)
		m.Auth.MACs = k.authenticator(func(r int) [32]byte { return k.ClientKey(m.Request.Client, protocol.ReplicaID(r)) }, &d)
	case !k.replica(m.From):
		return
	case mode.signed(m.Kind):
		m.Auth.Sig = ed25519.Sign(k.priv[m.From], s)
	case m.Kind == protocol.KindReply:
		if m.Reply == nil {
			return
		}
		d := sha256.Sum256(s)
		key := k.ClientKey(m.Reply.Client, m.From)
		mac := hmac16(&key, &d)
		m.Auth.MACs = [][]byte{mac[:]}
	default:
		d := sha256.Sum256(s)
		from := int(m.From)
		m.Auth.MACs = k.authenticator(func(r int) [32]byte { return k.pair[from*k.n+r] }, &d)
	}
}

// bufs holds buffers for signable bytes (wire's encoder is recursive, so
// a buffer on the stack would escape anyway).
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func signable(m *protocol.Message) *[]byte {
	b := bufs.Get().(*[]byte)
	*b = wire.Signable((*b)[:0], m)
	return b
}

func release(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufs.Put(b)
	}
}

// authenticator is one MAC per replica, in one allocation.
func (k *Keys) authenticator(key func(r int) [32]byte, d *[32]byte) [][]byte {
	macs := make([][]byte, k.n)
	backing := make([]byte, k.n*MACSize)
	for r := range macs {
		kr := key(r)
		mac := hmac16(&kr, d)
		macs[r] = backing[r*MACSize : (r+1)*MACSize : (r+1)*MACSize]
		copy(macs[r], mac[:])
	}
	return macs
}

// hmac16 is HMAC-SHA256(key, d) truncated to MACSize bytes, without
// allocating (crypto/hmac allocates its hashes on every call).
func hmac16(key, d *[32]byte) [MACSize]byte {
	var in [sha256.BlockSize + sha256.Size]byte
	for i := range sha256.BlockSize {
		in[i] = 0x36
		if i < len(key) {
			in[i] ^= key[i]
		}
	}
	copy(in[sha256.BlockSize:], d[:])
	inner := sha256.Sum256(in[:])
	for i := range sha256.BlockSize {
		in[i] = 0x5c
		if i < len(key) {
			in[i] ^= key[i]
		}
	}
	copy(in[sha256.BlockSize:], inner[:])
	outer := sha256.Sum256(in[:])
	var mac [MACSize]byte
	copy(mac[:], outer[:])
	return mac
}

// Verify checks m's authentication at receiver: its MAC for receiver (a
// request's from its client, a reply's, in mode MACs, for its client:
// receiver is not used then) or its sender's signature. A message carrying
// a view change or a new view also needs every nested message (the
// view change's checkpoints, the new view's view changes and theirs) to
// carry a valid signature from its own From; the new view's pre-prepares
// are covered by the new view's signature. Errors match ErrBadMAC or
// ErrBadSignature.
func (k *Keys) Verify(mode Mode, m *protocol.Message, receiver protocol.ReplicaID) error {
	buf := signable(m)
	defer release(buf)
	s := *buf
	switch {
	case m.Kind == protocol.KindRequest:
		if m.Request == nil {
			return fmt.Errorf("%w: request without a request", ErrBadMAC)
		}
		if !k.replica(receiver) {
			return fmt.Errorf("%w: receiver %d of %d replicas", ErrBadMAC, receiver, k.n)
		}
		key := k.ClientKey(m.Request.Client, receiver)
		return checkMAC(&m.Auth, int(receiver), &key, s, m)
	case !k.replica(m.From):
		if mode.signed(m.Kind) {
			return fmt.Errorf("%w: %v from %d of %d replicas", ErrBadSignature, m.Kind, m.From, k.n)
		}
		return fmt.Errorf("%w: %v from %d of %d replicas", ErrBadMAC, m.Kind, m.From, k.n)
	case mode.signed(m.Kind):
		if !ed25519.Verify(k.pub[m.From], s, m.Auth.Sig) {
			return fmt.Errorf("%w: %v from %d", ErrBadSignature, m.Kind, m.From)
		}
	case m.Kind == protocol.KindReply:
		if m.Reply == nil {
			return fmt.Errorf("%w: reply without a reply", ErrBadMAC)
		}
		key := k.ClientKey(m.Reply.Client, m.From)
		return checkMAC(&m.Auth, 0, &key, s, m)
	default:
		if !k.replica(receiver) {
			return fmt.Errorf("%w: receiver %d of %d replicas", ErrBadMAC, receiver, k.n)
		}
		if err := checkMAC(&m.Auth, int(receiver), &k.pair[int(m.From)*k.n+int(receiver)], s, m); err != nil {
			return err
		}
	}
	if m.ViewChange == nil && m.NewView == nil {
		return nil
	}
	var seen [][32]byte
	if err := k.verifyNested(m, 0, &seen); err != nil {
		return fmt.Errorf("%w: %v from %d: %v", ErrBadSignature, m.Kind, m.From, err)
	}
	return nil
}

func checkMAC(a *protocol.Auth, i int, key *[32]byte, s []byte, m *protocol.Message) error {
	if i >= len(a.MACs) {
		return fmt.Errorf("%w: %v from %d has %d MACs, none for %d", ErrBadMAC, m.Kind, m.From, len(a.MACs), i)
	}
	d := sha256.Sum256(s)
	want := hmac16(key, &d)
	if subtle.ConstantTimeCompare(want[:], a.MACs[i]) != 1 {
		return fmt.Errorf("%w: %v from %d, MAC %d", ErrBadMAC, m.Kind, m.From, i)
	}
	return nil
}

// verifyNested checks the signatures of m's nested messages and, below
// them, theirs. seen holds the hashes of nested messages already checked
// (view changes in a new view carry the same checkpoints).
func (k *Keys) verifyNested(m *protocol.Message, depth int, seen *[][32]byte) error {
	if depth >= wire.MaxDepth {
		return fmt.Errorf("nested deeper than %d", wire.MaxDepth)
	}
	check := func(field string, ms []protocol.Message) error {
		for i := range ms {
			if err := k.verifySigned(&ms[i], seen); err != nil {
				return fmt.Errorf("%s[%d]: %w", field, i, err)
			}
			if ms[i].ViewChange != nil || ms[i].NewView != nil {
				if err := k.verifyNested(&ms[i], depth+1, seen); err != nil {
					return fmt.Errorf("%s[%d]: %v from %d: %w", field, i, ms[i].Kind, ms[i].From, err)
				}
			}
		}
		return nil
	}
	if vc := m.ViewChange; vc != nil {
		if err := check("proof", vc.Proof); err != nil {
			return err
		}
	}
	if nv := m.NewView; nv != nil {
		if err := check("view-changes", nv.ViewChanges); err != nil {
			return err
		}
	}
	return nil
}

// verifySigned checks a nested message's own signature.
func (k *Keys) verifySigned(m *protocol.Message, seen *[][32]byte) error {
	if !k.replica(m.From) {
		return fmt.Errorf("%v from %d of %d replicas", m.Kind, m.From, k.n)
	}
	s := wire.Signable(nil, m)
	h := sha256.New()
	h.Write(s)
	h.Write(m.Auth.Sig)
	var id [32]byte
	h.Sum(id[:0])
	for _, x := range *seen {
		if x == id {
			return nil
		}
	}
	if !ed25519.Verify(k.pub[m.From], s, m.Auth.Sig) {
		return fmt.Errorf("%v from %d: signature does not verify", m.Kind, m.From)
	}
	*seen = append(*seen, id)
	return nil
}

// Forge garbles m.Auth (a bit flipped in every MAC and in the signature)
// so that no receiver accepts m: the forge Byzantine behaviour. It copies
// what it changes, so other holders of the same Auth are unaffected. Call
// it after Authenticate.
func Forge(m *protocol.Message) {
	if len(m.Auth.MACs) > 0 {
		macs := make([][]byte, len(m.Auth.MACs))
		for i, mac := range m.Auth.MACs {
			macs[i] = flip(mac)
		}
		m.Auth.MACs = macs
	}
	m.Auth.Sig = flip(m.Auth.Sig)
}

func flip(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0x10
	return c
}

// ErrBadRequest: a request ordered in a pre-prepare whose client
// authenticator does not check at the receiver: a faulty primary made it
// up or changed it.
var ErrBadRequest = errors.New("auth: bad request authenticator")

// requestDigest is what a client's request MACs cover: client, timestamp
// and op (BatchDigest of the request alone, without its MACs).
func requestDigest(r *protocol.Request) [32]byte {
	return protocol.BatchDigest([]protocol.Request{{Client: r.Client, Timestamp: r.Timestamp, Op: r.Op}})
}

// AuthenticateRequest sets r.MACs: the client's MAC for every replica
// (keys ClientKey(r.Client, replica)). It travels with the request into
// pre-prepares, where every backup checks its own entry.
func (k *Keys) AuthenticateRequest(r *protocol.Request) {
	d := requestDigest(r)
	r.MACs = k.authenticator(func(i int) [32]byte { return k.ClientKey(r.Client, protocol.ReplicaID(i)) }, &d)
}

// VerifyRequests checks receiver's entry of the client authenticator of
// every request m orders: a pre-prepare's batch and the batches of the
// pre-prepares a new view carries.
func (k *Keys) VerifyRequests(m *protocol.Message, receiver protocol.ReplicaID) error {
	check := func(batch []protocol.Request, seq protocol.Seq) error {
		for i := range batch {
			r := &batch[i]
			key := k.ClientKey(r.Client, receiver)
			d := requestDigest(r)
			want := hmac16(&key, &d)
			if int(receiver) >= len(r.MACs) || subtle.ConstantTimeCompare(want[:], r.MACs[receiver]) != 1 {
				return fmt.Errorf("%w: %v from %d, seq %d, request %d of client %d", ErrBadRequest, m.Kind, m.From, seq, i, r.Client)
			}
		}
		return nil
	}
	if err := check(m.Batch, m.Seq); err != nil {
		return err
	}
	if nv := m.NewView; nv != nil {
		for i := range nv.PrePrepares {
			if err := check(nv.PrePrepares[i].Batch, nv.PrePrepares[i].Seq); err != nil {
				return err
			}
		}
	}
	return nil
}
