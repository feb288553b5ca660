package process

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/soakd/soakd/internal/components"
)

type fakeNodes struct {
	log       []string
	failCrash string
	failStart int // fail this many restarts
}

func (f *fakeNodes) NodeIDs() []string { return []string{"node-1", "node-2", "node-3"} }
func (f *fakeNodes) Crash(id string) error {
	if id == f.failCrash {
		return errors.New("no such node")
	}
	f.log = append(f.log, "crash "+id)
	return nil
}
func (f *fakeNodes) Restart(id string) error {
	if f.failStart > 0 {
		f.failStart--
		return errors.New("disk busy")
	}
	f.log = append(f.log, "restart "+id)
	return nil
}

func TestCrashAndRestart(t *testing.T) {
	n := &fakeNodes{failStart: 1}
	k := &crash{nodes: map[string]components.Nodes{"raft": n}}
	revert, err := k.Inject(context.Background(), "raft/node-1,node-3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := revert(context.Background()); err == nil {
		t.Fatal("first restart should fail")
	}
	if err := revert(context.Background()); err != nil { // retry restarts only what is still down
		t.Fatal(err)
	}
	if got := strings.Join(n.log, ","); got != "crash node-1,crash node-3,restart node-3,restart node-1" {
		t.Fatalf("calls = %s", got)
	}
	if err := revert(context.Background()); err != nil || len(n.log) != 4 {
		t.Fatalf("revert is not idempotent: %v %v", err, n.log)
	}
}

func TestHalfAppliedCrashIsUndone(t *testing.T) {
	n := &fakeNodes{failCrash: "node-2"}
	k := &crash{nodes: map[string]components.Nodes{"raft": n}}
	if _, err := k.Inject(context.Background(), "raft/node-1,node-2", nil); err == nil || !strings.Contains(err.Error(), "crash raft/node-2") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(n.log, ","); got != "crash node-1,restart node-1" {
		t.Fatalf("calls = %s", got)
	}
	for _, bad := range []string{"raft", "pbft/node-1", "raft/"} {
		if _, err := k.Inject(context.Background(), bad, nil); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	if err := Spec().Validate(map[string]string{"force": "1"}); err == nil {
		t.Error("unknown param accepted")
	}
}
