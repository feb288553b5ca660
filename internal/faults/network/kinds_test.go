package network

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/fabric/fabrictest"
	"github.com/soakd/soakd/internal/faults"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// kindsByName binds every link kind to f, resolving targets with
// testResolver.
func kindsByName(f *fabric.Fabric) faults.Kinds {
	m := faults.Kinds{}
	for _, lk := range linkKinds {
		m[lk.name] = faults.Kind{Spec: lk.spec(), Injector: &injector{lk: lk, f: f, log: slog.New(slog.DiscardHandler), resolve: testResolver}}
	}
	return m
}

func TestKindsRegisterAndValidate(t *testing.T) {
	f := fabrictest.New(t)
	reg, err := faults.NewRegistry(Specs()...)
	if err != nil {
		t.Fatal(err)
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
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t)
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
			d, err := fabrictest.RoundTrip(c, 1, time.Second)
			if err == nil && d < 45*time.Millisecond {
				err = fmt.Errorf("rtt %v", d)
			}
			return err
		}},
		{"bandwidth", "t/b", map[string]string{"rate": "64KiB/s"}, func(c net.Conn) error {
			d, err := fabrictest.RoundTrip(c, 32<<10, 3*time.Second)
			if err == nil && d < 350*time.Millisecond {
				err = fmt.Errorf("32KiB at 64KiB/s in %v", d)
			}
			return err
		}},
		{"blackhole", "t/a", nil, func(c net.Conn) error {
			if _, err := fabrictest.RoundTrip(c, 1, 300*time.Millisecond); !fabrictest.IsTimeout(err) {
				return fmt.Errorf("echo through blackhole: %v", err)
			}
			return nil
		}},
		{"reset", "t/b", nil, func(c net.Conn) error {
			if _, err := fabrictest.RoundTrip(c, 1, time.Second); err == nil || fabrictest.IsTimeout(err) {
				return fmt.Errorf("not reset: %v", err)
			}
			return nil
		}},
		{"loss", "t/a", map[string]string{"probability": "100%"}, func(c net.Conn) error {
			if _, err := fabrictest.RoundTrip(c, 1, 300*time.Millisecond); !fabrictest.IsTimeout(err) {
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
			c := fabrictest.Dial(t, f, "a", "b", e.Addr())
			if err := tc.check(c); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			_ = c.Close()
		} else {
			dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			c, err := f.Dialer()(dctx, "a", "b", e.Addr())
			cancel()
			if err == nil {
				_ = c.Close()
				t.Errorf("%s: a->b dial succeeded", name)
			}
		}
		fabrictest.MustRevert(t, rev)
		if _, err := fabrictest.RoundTrip(fabrictest.Dial(t, f, "a", "b", e.Addr()), 1, time.Second); err != nil {
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
	f := fabrictest.New(t)
	ks := kindsByName(f)
	k := ks["delay"].Injector.(*injector)
	p, err := parseDelay(map[string]string{"latency": "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	ab := fabric.Link{From: "a", To: "b"}
	if _, err := k.verify(context.Background(), p, ab); err == nil {
		t.Fatal("verify passed with no delay applied")
	}
	kp := ks["partition"].Injector.(*injector)
	pp, _ := parsePartition(nil)
	if _, err := kp.verify(context.Background(), pp, ab); err == nil {
		t.Fatal("partition verify passed with no cut")
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
	for _, s := range Specs() {
		if s.TakesNodesOut {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	if got := strings.Join(out, ","); got != "blackhole,partition" {
		t.Fatalf("kinds taking nodes out: %s", got)
	}
}
