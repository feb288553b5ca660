package resource

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/offheap"
)

func TestConnectionsParams(t *testing.T) {
	for _, bad := range []map[string]string{{"count": "0"}, {"count": "-4"}, {"count": "x"}, {"leave": "1"}} {
		if err := Connections().Validate(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := Connections().Bounds(config.Default(), map[string]string{"count": "1001"}); err == nil {
		t.Error("count above max_connections accepted")
	}
}

// listener accepts connections and counts the open ones until they close.
type listener struct {
	ln   net.Listener
	mu   sync.Mutex
	open int
	wg   sync.WaitGroup
}

func newListener(t *testing.T) *listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln}
	l.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.open++
			l.mu.Unlock()
			l.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				l.mu.Lock()
				l.open--
				l.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() { ln.Close(); l.wg.Wait() })
	return l
}

func (l *listener) waitOpen(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		n := l.open
		l.mu.Unlock()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open at the listener, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A connections fault holds count connections, spread over a node's
// addresses (or to soakd's own for self), and closes them on revert.
func TestConnectionsHoldAndClose(t *testing.T) {
	a, b := newListener(t), newListener(t)
	toy := fakeNodes{addrs: map[string][]string{"node-1": {a.ln.Addr().String(), b.ln.Addr().String()}, "node-2": nil}}
	in, _ := Connections().New(faults.Env{Components: []components.Component{toy}, SelfAddr: a.ln.Addr().String()})
	revert, err := in.Inject(context.Background(), "toy/node-1", map[string]string{"count": "30"})
	if err != nil {
		t.Fatal(err)
	}
	a.waitOpen(t, 15)
	b.waitOpen(t, 15)
	if n := offheap.HeldFDs(); n != 30 {
		t.Errorf("offheap counts %d held descriptors, want 30", n)
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = revert(context.Background())
	a.waitOpen(t, 0)
	b.waitOpen(t, 0)
	if n := offheap.HeldFDs(); n != 0 {
		t.Errorf("%d held after the revert", n)
	}
	revert, err = in.Inject(context.Background(), "self", map[string]string{"count": "5"})
	if err != nil {
		t.Fatal(err)
	}
	a.waitOpen(t, 5)
	_ = revert(context.Background())
	a.waitOpen(t, 0)
	for _, target := range []string{"toy/node-2", "toy/node-9", "other/node-1"} {
		if _, err := in.Inject(context.Background(), target, nil); err == nil {
			t.Errorf("target %s accepted", target)
		}
	}
}

// A listener that is gone fails the fault, and what was opened is closed.
func TestConnectionsFailCleanly(t *testing.T) {
	a := newListener(t)
	addr := a.ln.Addr().String()
	a.ln.Close()
	in, _ := Connections().New(faults.Env{SelfAddr: addr})
	if _, err := in.Inject(context.Background(), "self", map[string]string{"count": "3"}); err == nil {
		t.Fatal("connections to a closed port held")
	}
	if n := offheap.HeldFDs(); n != 0 {
		t.Errorf("%d held after a failed fault", n)
	}
}
