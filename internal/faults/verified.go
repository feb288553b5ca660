package faults

import (
	"context"
	"sync"
)

// An injector says what it verified of its fault (a probe's round trip
// through a delayed link, the bytes a memory fault holds) with Verified on
// the context the runner hands to Inject; the runner journals it with the
// fault_injected event, so the run's report shows each fault's measured
// effect, not only what was asked for.

type verifiedKey struct{}

type verifiedNote struct {
	mu   sync.Mutex
	text string
}

// withVerified returns ctx carrying a note Verified fills in.
func withVerified(ctx context.Context) (context.Context, *verifiedNote) {
	n := &verifiedNote{}
	return context.WithValue(ctx, verifiedKey{}, n), n
}

// Verified records what the injection measured of its effect. Outside an
// injection the runner started (a test calling Inject directly), it is a
// no-op.
func Verified(ctx context.Context, effect string) {
	if n, ok := ctx.Value(verifiedKey{}).(*verifiedNote); ok {
		n.mu.Lock()
		n.text = effect
		n.mu.Unlock()
	}
}

func (n *verifiedNote) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.text
}
