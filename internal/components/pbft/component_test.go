package pbft

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/components/pbft/protocol"
	"github.com/soakd/soakd/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testCluster struct {
	*Cluster
	lin *check.Linearizability
}

func startCluster(t *testing.T, replicas int, before ...func(*Cluster)) *testCluster {
	t.Helper()
	cfg := config.Default()
	cfg.Components.PBFT.Replicas = replicas
	return startClusterWith(t, cfg, before...)
}

func startClusterWith(t *testing.T, cfg *config.Config, before ...func(*Cluster)) *testCluster {
	t.Helper()
	c, err := New(components.Deps{Config: cfg, StateDir: t.TempDir(), Seed: 7, Metrics: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{Cluster: c.(*Cluster)}
	tc.lin, err = check.NewLinearizability(check.LinearizabilityOptions{Component: "pbft", InitialAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	tc.SetRecorder(tc.lin)
	for _, f := range before {
		f(tc.Cluster)
	}
	if err := tc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tc.Stop(context.Background()) })
	return tc
}

// load runs workers doing puts, gets and cas on a few keys for d, and
// returns how many ops finished ok.
func (tc *testCluster) load(t *testing.T, workers int, d time.Duration) (ok, unknown int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := range workers {
		wg.Go(func() {
			ctx := components.WithClientID(context.Background(), w)
			for i := 0; time.Now().Before(end); i++ {
				key := fmt.Sprint("k", (w+i)%5)
				var op components.Op
				switch i % 3 {
				case 0:
					op = components.Op{Name: "put", Key: key, Value: []byte(fmt.Sprint(w, "-", i))}
				case 1:
					op = components.Op{Name: "get", Key: key}
				default:
					op = components.Op{Name: "cas", Key: key, Expect: []byte(fmt.Sprint(w, "-", i-2)), Value: []byte(fmt.Sprint(w, "-", i))}
				}
				octx, cancel := context.WithTimeout(ctx, 3*time.Second)
				r := tc.Do(octx, op)
				cancel()
				mu.Lock()
				switch r.Outcome {
				case components.OutcomeOK:
					ok++
				case components.OutcomeUnknown:
					unknown++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok, unknown
}

func (tc *testCluster) linearizable(t *testing.T) {
	t.Helper()
	r := tc.lin.CheckNow()
	if r.Illegal != 0 || r.OK == 0 {
		t.Fatalf("pbft history: %+v", r)
	}
}

func TestOpsAreLinearizable(t *testing.T) {
	tc := startCluster(t, 4)
	ok, unknown := tc.load(t, 4, 2*time.Second)
	t.Logf("%d ok, %d unknown; %s", ok, unknown, tc.Summary().(Summary).Line)
	if ok < 50 || unknown > 0 {
		t.Fatalf("%d ok, %d unknown", ok, unknown)
	}
	tc.linearizable(t)
}

// The primary crashes: the others change view and serve; it restarts from
// its disk and catches up.
func TestPrimaryCrashAndRestart(t *testing.T) {
	tc := startCluster(t, 4)
	tc.load(t, 2, 500*time.Millisecond)
	prim, _ := tc.Resolve("primary", 0)
	if err := tc.Crash(prim[0]); err != nil {
		t.Fatal(err)
	}
	ok, _ := tc.load(t, 2, 3*time.Second)
	s := tc.Summary().(Summary)
	t.Logf("after crashing %s: %d ok; %s; rejected %s", prim[0], ok, s.Line, tc.rejections())
	if ok == 0 || s.View == 0 {
		t.Fatalf("no progress or no view change after the primary crashed: %d ok, %s", ok, s.Line)
	}
	if err := tc.Restart(prim[0]); err != nil {
		t.Fatal(err)
	}
	tc.load(t, 2, 2*time.Second)
	n, _ := tc.node(prim[0])
	_, st := n.state()
	t.Logf("restarted %s: %+v", prim[0], st)
	if st.LastExecuted == 0 {
		t.Fatal("the restarted replica executed nothing")
	}
	tc.linearizable(t)
}

// Each Byzantine behaviour on one replica (f = 1): the history stays
// linearizable and the cluster keeps serving.
func TestByzantineBehaviours(t *testing.T) {
	for _, name := range []string{"silent", "forge", "mutate", "replay", "equivocate", "lie-view-change", "twin"} {
		t.Run(name, func(t *testing.T) {
			tc := startCluster(t, 4)
			target := "primary"
			if name == "silent" || name == "forge" {
				target = "backup"
			}
			ids, _ := tc.Resolve(target, 1)
			b, err := byzantine.New(name, nil, protocol.ReplicaID(nodeIndex(ids[0])), 4, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.SetBehavior(ids[0], b); err != nil {
				t.Fatal(err)
			}
			ok, unknown := tc.load(t, 3, 3*time.Second)
			t.Logf("%s on %s: %d ok, %d unknown; %s; rejected %s", name, ids[0], ok, unknown, tc.Summary().(Summary).Line, tc.rejections())
			if ok == 0 {
				t.Fatal("no progress")
			}
			tc.linearizable(t)
			if v := tc.violations(); v != "" {
				t.Fatalf("violations with f Byzantine replicas: %s", v)
			}
		})
	}
}

func nodeIndex(name string) int {
	var i int
	fmt.Sscanf(name, "node-%d", &i)
	return i - 1
}

func (tc *testCluster) rejections() string { return nonZero(tc.m.rejected, "reason") }

// nonZero lists a counter vector's non-zero counts by one label, "" when
// none.
func nonZero(vec *prometheus.CounterVec, label string) string {
	ch := make(chan prometheus.Metric, 100)
	vec.Collect(ch)
	close(ch)
	out := ""
	for m := range ch {
		var pb dto.Metric
		_ = m.Write(&pb)
		if v := pb.GetCounter().GetValue(); v > 0 {
			for _, l := range pb.GetLabel() {
				if l.GetName() == label {
					out += fmt.Sprintf("%s=%v ", l.GetValue(), v)
				}
			}
		}
	}
	return out
}

// violations lists the invariant violations counted, "" when none.
func (tc *testCluster) violations() string { return nonZero(tc.m.violations, "invariant") }

// Messages lost, doubled and reordered one at a time on every replica's
// links: PBFT keeps serving and the history stays linearizable.
func TestMessageFaults(t *testing.T) {
	tc := startCluster(t, 4)
	for i, id := range tc.NodeIDs() {
		f := components.MessageFault{Drop: 0.05, Duplicate: 0.2, Reorder: 4, Seed: uint64(i + 1)}
		if err := tc.SetMessageFaults(id, f); err != nil {
			t.Fatal(err)
		}
	}
	ok, unknown := tc.load(t, 3, 3*time.Second)
	t.Logf("%d ok, %d unknown; %s; rejected %s", ok, unknown, tc.Summary().(Summary).Line, tc.rejections())
	if ok == 0 {
		t.Fatal("no progress")
	}
	for _, id := range tc.NodeIDs() {
		if err := tc.SetMessageFaults(id, components.MessageFault{}); err != nil {
			t.Fatal(err)
		}
	}
	tc.linearizable(t)
	if v := tc.violations(); v != "" {
		t.Fatalf("violations: %s", v)
	}
}

// Calls without a load worker's client id borrow one and give it back: the
// ids, and every replica's reply cache, stay bounded by the calls in
// flight at once, not by the calls ever made.
func TestAnonymousClientsAreReused(t *testing.T) {
	tc := startCluster(t, 4)
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r := tc.Do(ctx, components.Op{Name: "put", Key: "k", Value: []byte(fmt.Sprint(i))})
		cancel()
		if r.Outcome != components.OutcomeOK {
			t.Fatalf("put %d: %v %v", i, r.Outcome, r.Err)
		}
	}
	tc.clients.mu.Lock()
	minted := tc.clients.next
	tc.clients.mu.Unlock()
	if minted != 1 {
		t.Fatalf("50 sequential calls minted %d client ids, want 1", minted)
	}
	tc.linearizable(t)
}
