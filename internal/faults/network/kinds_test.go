package network

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/faults"
)

// testResolver resolves "t/<node>" to that node against the rest of a
// three-node group, and "t/minority" to a against b and c.
func testResolver(target string) ([]string, []string, error) {
	all := []string{"a", "b", "c"}
	name, ok := strings.CutPrefix(target, "t/")
	if !ok {
		return nil, nil, fmt.Errorf("unknown component in %q", target)
	}
	if name == "minority" {
		return []string{"a"}, []string{"b", "c"}, nil
	}
	var rest []string
	found := false
	for _, n := range all {
		if n == name {
			found = true
		} else {
			rest = append(rest, n)
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("no node %q", name)
	}
	return []string{name}, rest, nil
}

func kindsByName(f *Fabric) map[string]faults.Kind {
	m := map[string]faults.Kind{}
	for _, k := range NewKinds(f, testResolver) {
		m[k.Name()] = k
	}
	return m
}

func TestKindsRegisterAndValidate(t *testing.T) {
	f := newFabric(t)
	reg := faults.NewRegistry()
	for _, k := range NewKinds(f, testResolver) {
		if err := reg.Register(k); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(reg.Names(), ","); got != "bandwidth,blackhole,delay,loss,partition,reset" {
		t.Fatalf("kinds: %s", got)
	}
	ks := kindsByName(f)
	good := []struct {
		kind   string
		params map[string]string
	}{
		{"delay", nil},
		{"delay", map[string]string{"latency": "50ms", "jitter": "5ms"}},
		{"bandwidth", map[string]string{"rate": "1MiB/s"}},
		{"loss", map[string]string{"probability": "10%"}},
		{"loss", map[string]string{"probability": "0.25"}},
		{"partition", map[string]string{"mode": "split"}},
		{"partition", map[string]string{"mode": "oneway", "direction": "in"}},
		{"blackhole", nil},
		{"reset", nil},
	}
	for _, g := range good {
		if err := ks[g.kind].Validate(g.params); err != nil {
			t.Errorf("%s %v: %v", g.kind, g.params, err)
		}
	}
	bad := []struct {
		kind   string
		params map[string]string
		want   string
	}{
		{"delay", map[string]string{"latency": "fast"}, "latency"},
		{"delay", map[string]string{"latency": "5ms", "jitter": "10ms"}, "exceed"},
		{"delay", map[string]string{"lag": "5ms"}, "unknown parameter lag"},
		{"bandwidth", map[string]string{"rate": "lots"}, "rate"},
		{"bandwidth", map[string]string{"rate": "0/s"}, "at least"},
		{"loss", map[string]string{"probability": "120%"}, "not in [0, 1]"},
		{"loss", map[string]string{"probability": "-0.1"}, "not in [0, 1]"},
		{"partition", map[string]string{"mode": "halves"}, "mode"},
		{"partition", map[string]string{"direction": "in"}, "oneway only"},
		{"blackhole", map[string]string{"x": "1"}, "known: none"},
	}
	for _, b := range bad {
		err := ks[b.kind].Validate(b.params)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s %v: want error containing %q, got %v", b.kind, b.params, b.want, err)
		}
	}
}

func TestKindsInjectVerifyRevert(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	ks := kindsByName(f)
	ctx := context.Background()
	for _, tc := range []struct {
		kind   string
		target string
		params map[string]string
		// check runs with the fault in force on a fresh a->b connection
		check func(c net.Conn) error
	}{
		{"delay", "t/a", map[string]string{"latency": "50ms"}, func(c net.Conn) error {
			d, err := roundTrip(c, 1, time.Second)
			if err == nil && d < 45*time.Millisecond {
				err = fmt.Errorf("rtt %v", d)
			}
			return err
		}},
		{"bandwidth", "t/b", map[string]string{"rate": "64KiB/s"}, func(c net.Conn) error {
			d, err := roundTrip(c, 32<<10, 3*time.Second)
			if err == nil && d < 350*time.Millisecond {
				err = fmt.Errorf("32KiB at 64KiB/s in %v", d)
			}
			return err
		}},
		{"blackhole", "t/a", nil, func(c net.Conn) error {
			if _, err := roundTrip(c, 1, 300*time.Millisecond); !isTimeout(err) {
				return fmt.Errorf("echo through blackhole: %v", err)
			}
			return nil
		}},
		{"reset", "t/b", nil, func(c net.Conn) error {
			if _, err := roundTrip(c, 1, time.Second); err == nil || isTimeout(err) {
				return fmt.Errorf("not reset: %v", err)
			}
			return nil
		}},
		{"loss", "t/a", map[string]string{"probability": "100%"}, func(c net.Conn) error {
			if _, err := roundTrip(c, 1, 300*time.Millisecond); !isTimeout(err) {
				return fmt.Errorf("echo through 100%% loss: %v", err)
			}
			return nil
		}},
		{"partition", "t/minority", map[string]string{"mode": "split"}, nil},
		{"partition", "t/a", map[string]string{"mode": "oneway"}, nil},
		{"partition", "t/b", nil, nil},
	} {
		name := tc.kind + " " + tc.target + fmt.Sprint(tc.params)
		rev, err := ks[tc.kind].Inject(ctx, tc.target, tc.params)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tc.check != nil {
			c := dial(t, f, "a", "b", e.addr())
			if err := tc.check(c); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			_ = c.Close()
		} else {
			dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			c, err := f.Dialer()(dctx, "a", "b", e.addr())
			cancel()
			if err == nil {
				_ = c.Close()
				t.Errorf("%s: a->b dial succeeded", name)
			}
		}
		mustRevert(t, rev)
		if _, err := roundTrip(dial(t, f, "a", "b", e.addr()), 1, time.Second); err != nil {
			t.Fatalf("%s: after revert: %v", name, err)
		}
	}
	if _, err := ks["partition"].Inject(ctx, "t/zz", nil); err == nil {
		t.Fatal("unknown target accepted")
	}
	if _, err := ks["delay"].Inject(ctx, "t/a", map[string]string{"latency": "x"}); err == nil {
		t.Fatal("bad params accepted at Inject")
	}
}

// The run-time checks can fail: a delay that is not in force is caught.
func TestVerifyCatchesMissingEffect(t *testing.T) {
	f := newFabric(t)
	k := kindsByName(f)["delay"].(*kind)
	p, err := k.plan(map[string]string{"latency": "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.verify(context.Background(), p, Link{"a", "b"}); err == nil {
		t.Fatal("verify passed with no delay applied")
	}
	kp := kindsByName(f)["partition"].(*kind)
	pp, _ := kp.plan(nil)
	if _, err := kp.verify(context.Background(), pp, Link{"a", "b"}); err == nil {
		t.Fatal("partition verify passed with no cut")
	}
}

// A client that closes while the destination floods it must not strand
// pipe goroutines (toxiproxy v2.5.0 does, which is why the fabric has its
// own proxy); goleak in TestMain checks the rest at the end.
func TestClientCloseDuringFloodLeavesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	f := newFabric(t)
	for range 20 {
		c := dial(t, f, "a", "b", ln.Addr().String())
		_, _ = c.Read(make([]byte, 1000))
		_ = c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		f.mu.Lock()
		n := 0
		for _, p := range f.proxies {
			n += p.connCount()
		}
		f.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d proxied connections still open 2s after their clients closed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type threeNodes struct{}

func (threeNodes) Resolve(sel string, _ uint64) ([]string, error) {
	switch sel {
	case "all":
		return []string{"node-1", "node-2", "node-3"}, nil
	case "leader":
		return []string{"node-1"}, nil
	case "node-1", "node-2", "node-3":
		return []string{sel}, nil
	}
	return nil, fmt.Errorf("unknown %q", sel)
}

func TestFromComponents(t *testing.T) {
	rs := map[string]components.TargetResolver{"raft": threeNodes{}}
	for _, tc := range []struct {
		target      string
		qualify     bool
		nodes, rest string
	}{
		{"raft/leader", false, "node-1", "node-2,node-3"},
		{"raft/node-1,node-3", false, "node-1,node-3", "node-2"},
		{"raft/node-2", true, "raft/node-2", "raft/node-1,raft/node-3"},
	} {
		nodes, rest, err := FromComponents(rs, tc.qualify)(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(nodes, ",") != tc.nodes || strings.Join(rest, ",") != tc.rest {
			t.Errorf("%s: nodes %v rest %v, want %s | %s", tc.target, nodes, rest, tc.nodes, tc.rest)
		}
	}
	for _, bad := range []string{"pbft/primary", "raft", "raft/node-9"} {
		if _, _, err := FromComponents(rs, false)(bad); err == nil {
			t.Errorf("%s resolved", bad)
		}
	}
}

// TestKindsSayWhichTakeNodesOut: the blast radius counts partition and
// blackhole, which cut a node off, not links that are only slow or lossy.
func TestKindsSayWhichTakeNodesOut(t *testing.T) {
	var out []string
	for name, k := range kindsByName(newFabric(t)) {
		if d, ok := k.(faults.NodeDisruptor); ok && d.TakesNodesOut() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	if got := strings.Join(out, ","); got != "blackhole,partition" {
		t.Fatalf("kinds taking nodes out: %s", got)
	}
}
