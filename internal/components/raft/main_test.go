package raft

import (
	"context"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCluster builds and starts an n-node cluster in a temp dir; it is
// stopped at cleanup. dial may be nil.
func testCluster(t testing.TB, n int, dial components.Dialer, opts options) (*Cluster, *prometheus.Registry) {
	t.Helper()
	return testClusterIn(t, t.TempDir(), n, dial, opts)
}

func testClusterIn(t testing.TB, dir string, n int, dial components.Dialer, opts options) (*Cluster, *prometheus.Registry) {
	t.Helper()
	cfg := config.Default()
	cfg.Components.Raft.Nodes = n
	cfg.Load.Raft.Keys = 1000
	reg := prometheus.NewRegistry()
	c, err := newCluster(components.Deps{StateDir: dir, Config: cfg, Dial: dial, Metrics: reg}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c, reg
}

// collect is a Recorder that keeps the whole history (tests are short),
// for the lead's porcupine checker to consume.
type collect struct {
	mu  sync.Mutex
	ops []HistoryOp
}

func (c *collect) Record(op HistoryOp) {
	c.mu.Lock()
	c.ops = append(c.ops, op)
	c.mu.Unlock()
}

func (c *collect) history() []HistoryOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]HistoryOp(nil), c.ops...)
}

// leaderID waits up to d for a leader and returns its id ("" on timeout).
func leaderID(c *Cluster, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		if inst := c.leader(""); inst != nil {
			return inst.id
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func instOf(c *Cluster, id string) *instance {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.node(id).inst
}

func do(t testing.TB, c *Cluster, name, key string, value, expect []byte) components.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, components.Op{Name: name, Key: key, Value: value, Expect: expect})
}

// metricValue returns the value of name (with label node=node when node
// is not empty) from reg; -1 when absent.
func metricValue(t testing.TB, reg *prometheus.Registry, name, node string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := node == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" && l.GetValue() == node {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func raftID(id string) hraft.ServerID { return hraft.ServerID(id) }

func raftAddrString(c *Cluster, id string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for a, n := range c.addrs {
		if n == id {
			return a
		}
	}
	return ""
}

func raftAddr(c *Cluster, id string) hraft.ServerAddress {
	return hraft.ServerAddress(raftAddrString(c, id))
}
