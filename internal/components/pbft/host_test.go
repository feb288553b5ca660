package pbft

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/nodeproc"
	"github.com/soakd/soakd/internal/components/pbft/byzantine"
	"github.com/soakd/soakd/internal/config"
)

// startHosts runs n replicas as Hosts in this process, each behind its own
// HTTP server on loopback, as `soakd node --component pbft` runs one: the
// seam of modes processes and remote without spawning processes. It
// returns their HTTP addresses by node id.
func startHosts(t *testing.T, n int, seed uint64, opts func(*HostOptions)) (map[string]string, []*Host) {
	t.Helper()
	dir := t.TempDir()
	peers, err := nodeproc.Members(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	var hosts []*Host
	for i := range n {
		o := HostOptions{ID: replicaName(i), Dir: fmt.Sprintf("%s/%s", dir, replicaName(i)), Seed: seed, Peers: peers,
			Metrics: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)}
		if opts != nil {
			opts(&o)
		}
		h, err := StartHost(o)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h.Handler())
		t.Cleanup(func() {
			h.Close() // ends its event stream first: srv.Close waits for it
			srv.Close()
		})
		addrs[o.ID] = strings.TrimPrefix(srv.URL, "http://")
		hosts = append(hosts, h)
	}
	return addrs, hosts
}

func remoteConfig(addrs map[string]string) *config.Config {
	cfg := config.Default()
	cfg.Components.PBFT.Replicas = len(addrs)
	cfg.Components.PBFT.Mode, cfg.Components.PBFT.Addresses = config.ModeRemote, addrs
	return cfg
}

// Replicas as node processes (here Hosts, reached as in mode remote): the
// clients' history is linearizable and every replica's executions reach
// the checkers through its event stream; a Byzantine behaviour is rebuilt
// in the replica from its recipe and acts; message faults reach it; what
// soakd cannot do to a replica it did not start fails with the reason.
func TestRemoteReplicas(t *testing.T) {
	addrs, _ := startHosts(t, 4, 7, nil)
	tc := startClusterWith(t, remoteConfig(addrs))
	ok, _ := tc.load(t, 4, 2*time.Second)
	s := tc.Summary().(Summary)
	t.Logf("%d ok; %s", ok, s.Line)
	if ok < 20 || s.Up != 4 || s.Executed == 0 {
		t.Fatalf("%d ok ops, %s", ok, s.Line)
	}
	if got := counterValue(t, tc.m.executed.WithLabelValues("requests")); got < float64(2*ok) {
		t.Errorf("%v requests executed reported for %d ok ops: the replicas' executions do not reach the checkers", got, ok)
	}
	time.Sleep(countersEvery + statusEvery) // the processes' counters come every second
	if got := counterValue(t, tc.m.sent.WithLabelValues("prepare")); got == 0 {
		t.Errorf("no prepares counted: the replica processes' message counters do not reach soakd's metrics")
	}
	ids, err := tc.Resolve("backup", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := byzantine.New(byzantine.Equivocate, nil, 0, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.SetBehavior(ids[0], b); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetMessageFaults(ids[0], components.MessageFault{Drop: 0.05, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	tc.load(t, 4, time.Second)
	if n, remote := tc.BehaviorActed(ids[0]); !remote || n == 0 {
		t.Errorf("behaviour on %s acted on %d messages (remote %v)", ids[0], n, remote)
	}
	if err := tc.SetBehavior(ids[0], byzantine.NewCollusion(0, 2).Primary()); err == nil || !strings.Contains(err.Error(), "cannot run in a replica process") {
		t.Errorf("a collusion on a replica process: %v", err)
	}
	if err := tc.SetBehavior(ids[0], nil); err != nil {
		t.Errorf("a correct replica again: %v", err)
	}
	if err := tc.SetMessageFaults(ids[0], components.MessageFault{}); err != nil {
		t.Errorf("no message faults again: %v", err)
	}
	tc.load(t, 4, time.Second)
	tc.linearizable(t)
	if v := tc.violations(); v != "" {
		t.Errorf("violations: %s", v)
	}
	if err := tc.Crash("node-2"); err == nil || !strings.Contains(err.Error(), "remote") {
		t.Errorf("crash of a remote replica: %v", err)
	}
	if why := tc.ExternalLinks(); why == "" {
		t.Error("remote replicas' links are not soakd's, but ExternalLinks is empty")
	}
	if pts := tc.ProcessTargets(); len(pts) != 4 || pts[0].PprofURL == "" || pts[0].Local {
		t.Errorf("process targets %+v", pts)
	}
}

// The planted bug in one replica process (HostOptions.Diverge): PBFT masks
// it, the checkers fed by its event stream catch it and name it.
func TestRemoteDivergentReplicaIsCaught(t *testing.T) {
	addrs, _ := startHosts(t, 4, 7, func(o *HostOptions) { o.Diverge = o.ID == "node-3" })
	tc := startClusterWith(t, remoteConfig(addrs))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && tc.violations() == "" {
		tc.load(t, 3, 500*time.Millisecond)
	}
	v := tc.violations()
	t.Logf("caught: %s", v)
	if !strings.Contains(v, "pbft_checkpoint") && !strings.Contains(v, "pbft_agreement") {
		t.Fatalf("a divergent replica went unnoticed: %q", v)
	}
	tc.linearizable(t) // the clients saw nothing wrong
}

// A replica process's API refuses a bad body with a one-line error and
// keeps one event watcher, the newest.
func TestHostAPI(t *testing.T) {
	addrs, hosts := startHosts(t, 4, 7, nil)
	url := "http://" + addrs["node-1"]
	for _, tc := range []struct{ path, body, want string }{
		{"/pbft/v1/behavior", `{"name": "no-such"}`, "no-such"},
		{"/pbft/v1/behavior", `{"nmae": "silent"}`, "unknown field"},
		{"/pbft/v1/message-faults", `not json`, "bad request body"},
	} {
		resp, err := http.Post(url+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		msg := strings.TrimSpace(string(b))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("POST %s %s: %s %q, want 400 and one line with %q", tc.path, tc.body, resp.Status, msg, tc.want)
		}
	}
	watch := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/pbft/v1/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, cancel
	}
	first, cancel1 := watch()
	defer cancel1()
	second, cancel2 := watch()
	defer cancel2()
	defer second.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, first.Body)
		done <- err
	}()
	select {
	case <-done: // the first stream ended when the second came
	case <-time.After(5 * time.Second):
		t.Error("two watchers of one replica's events")
	}
	first.Body.Close()
	if st := hosts[0].Status(); !st.Running || st.Addr == "" {
		t.Errorf("status %+v", st)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue()
}
