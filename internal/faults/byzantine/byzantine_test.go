package byzantine

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/soakd/soakd/internal/components"
	behavior "github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/faults"
)

// fakeBFT is a component whose replicas take behaviours; node-1 "sends" a
// prepare through its behaviour whenever one is set.
type fakeBFT struct {
	components.Component
	mu  sync.Mutex
	set map[string]behavior.Behavior
}

func (f *fakeBFT) Name() string      { return "pbft" }
func (f *fakeBFT) NodeIDs() []string { return []string{"node-1", "node-2", "node-3", "node-4"} }
func (f *fakeBFT) SetBehavior(node string, b behavior.Behavior) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b == nil {
		delete(f.set, node)
		return nil
	}
	f.set[node] = b
	// The replica sends at once, so the injection verifies.
	b.Outgoing(behavior.Out{To: 1, Msg: protocol.Message{Kind: protocol.KindPrepare}})
	return nil
}

func inject(t *testing.T, f *fakeBFT, target string, params map[string]string) (faults.Revert, error) {
	t.Helper()
	in, err := Spec().New(faults.Env{Components: []components.Component{f}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return in.Inject(context.Background(), target, params)
}

func TestInjectAndRevert(t *testing.T) {
	f := &fakeBFT{set: map[string]behavior.Behavior{}}
	revert, err := inject(t, f, "pbft/node-2,node-3", map[string]string{"behavior": "silent", "kinds": "commit"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.set) != 2 || f.set["node-2"] == nil || f.set["node-3"] == nil {
		t.Fatalf("behaviours set: %v", f.set)
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := revert(context.Background()); err != nil || len(f.set) != 0 {
		t.Fatalf("revert: %v, still set %v", err, f.set)
	}
}

func TestBadTargetsUndo(t *testing.T) {
	f := &fakeBFT{set: map[string]behavior.Behavior{}}
	for _, target := range []string{"raft/node-1", "pbft", "pbft/node-1,node-9"} {
		if _, err := inject(t, f, target, map[string]string{"behavior": "forge"}); err == nil {
			t.Errorf("target %q accepted", target)
		}
	}
	if len(f.set) != 0 {
		t.Fatalf("a failed injection left behaviours: %v", f.set)
	}
}

// The same target and params draw the same seed: a replayed fault
// misbehaves the same way.
func TestSeedIsReproducible(t *testing.T) {
	p := map[string]string{"behavior": "mutate", "share": "50%"}
	first, again := seedOf("pbft/node-1", p), seedOf("pbft/node-1", map[string]string{"share": "50%", "behavior": "mutate"})
	if first != again || first == seedOf("pbft/node-2", p) {
		t.Fatal("seed not a function of target and params")
	}
	if seedOf("pbft/node-1", map[string]string{"seed": "42"}) != 42 {
		t.Fatal("seed param ignored")
	}
	if err := Spec().Validate(map[string]string{"behavior": "silent", "share": "10%"}); err == nil || !strings.Contains(err.Error(), "share") {
		t.Fatalf("silent with share: %v", err)
	}
}
