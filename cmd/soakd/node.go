package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/raft"
	"github.com/soakd/soakd/internal/faults/leak"
)

// newNodeCmd is `soakd node`: one node of a component as its own process.
func newNodeCmd(stderr io.Writer) *cobra.Command {
	var component, id, stateDir, listen, planted string
	var peers, via []string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one node of a component as its own process (raft)",
		Long: `Run one node of a component as its own process, with its own state dir,
Raft address and HTTP listener: the way to run a soak's nodes as processes
or as pods, and to soak a node's process apart from soakd's. The HTTP
listener serves /metrics, /healthz, /debug/pprof/ and the node's API
(raft: POST /raft/v1/op, GET /raft/v1/status). Every member is given the
same --peer list; a brand-new member bootstraps the cluster with it, and a
member restarted on its state dir (after a SIGKILL, say) recovers from its
disk and rejoins. SIGTERM or SIGINT stop it gracefully.`,
		Example: `  soakd node --component raft --id node-1 --state-dir /var/lib/soakd/node-1 \
    --listen 127.0.0.1:9101 \
    --peer node-1=127.0.0.1:7001 --peer node-2=127.0.0.1:7002 --peer node-3=127.0.0.1:7003`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if component != "raft" {
				return usageError{fmt.Errorf("--component: only raft runs as a node process so far, not %q", component)}
			}
			pm := map[string]string{}
			for _, p := range peers {
				k, v, ok := strings.Cut(p, "=")
				if !ok || k == "" || v == "" {
					return usageError{fmt.Errorf("--peer %q: want id=host:port", p)}
				}
				if _, _, err := net.SplitHostPort(v); err != nil {
					return usageError{fmt.Errorf("--peer %q: %v", p, err)}
				}
				pm[k] = v
			}
			if stateDir == "" {
				return usageError{errors.New("--state-dir is required")}
			}
			vm := map[string]string{}
			for _, v := range via {
				k, to, ok := strings.Cut(v, "=")
				if !ok || k == "" || to == "" {
					return usageError{fmt.Errorf("--via %q: want peer-host:port=proxy-host:port", v)}
				}
				vm[k] = to
			}
			if planted == "" {
				planted = nodeLeakFromEnv(id)
			}
			var leakPlan *leak.Planted
			if planted != "" {
				p, err := leak.ParsePlanted(planted)
				if err != nil {
					return usageError{fmt.Errorf("--test-planted-leak: %w", err)}
				}
				leakPlan = &p
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runRaftNode(ctx, stderr, id, stateDir, listen, pm, vm, leakPlan)
		},
	}
	f := cmd.Flags()
	f.StringVar(&component, "component", "raft", "the component the node belongs to")
	f.StringVar(&id, "id", "", "this node's id, one of the --peer ids")
	f.StringVar(&stateDir, "state-dir", "", "the node's own state dir")
	f.StringVar(&listen, "listen", "127.0.0.1:0", "HTTP address: /metrics, /healthz, /debug/pprof/, the node API")
	f.StringArrayVar(&peers, "peer", nil, "id=host:port of a member's Raft address, every member's included (repeat)")
	f.StringArrayVar(&via, "via", nil, "peer-host:port=host:port: dial that peer's Raft address through this one (soakd's fault fabric proxy for the link; repeat)")
	f.StringVar(&planted, "test-planted-leak", "", "tests only: leak on purpose, e.g. resource=goroutines,rate=120/min,for=5m")
	_ = f.MarkHidden("test-planted-leak")
	return cmd
}

// NodeLeakEnv plants a leak in one node process, for end-to-end tests of
// the node leak path: "node-2:resource=goroutines,rate=120/min". soakd
// passes its environment to the node processes it starts, so a test sets
// it on soakd run. A test hook, on purpose not a config option.
const NodeLeakEnv = "SOAKD_TEST_NODE_LEAK"

// nodeLeakFromEnv is NodeLeakEnv's leak if it names node id.
func nodeLeakFromEnv(id string) string {
	node, planted, ok := strings.Cut(os.Getenv(NodeLeakEnv), ":")
	if !ok || node != id {
		return ""
	}
	return planted
}

func runRaftNode(ctx context.Context, stderr io.Writer, id, dir, listen string, peers, via map[string]string, planted *leak.Planted) error {
	base := slog.New(slog.NewTextHandler(stderr, nil))
	log := base.With("node", id, "component", "raft")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dial := func(ctx context.Context, from, to, addr string) (net.Conn, error) {
		if v, ok := via[addr]; ok {
			addr = v
		}
		return components.DirectDialer(ctx, from, to, addr)
	}
	nd, err := raft.StartNode(raft.NodeOptions{ID: id, Dir: dir, Peers: peers, Logger: log, Metrics: reg, Dial: dial})
	if err != nil {
		return err
	}
	defer nd.Close()
	if planted != nil {
		log.Warn("planting a leak for a test: this node leaks on purpose", "leak", planted.Params, "for", planted.For)
		undo, err := leak.Plant(ctx, *planted, clockwork.NewRealClock(), log)
		if err != nil {
			return err
		}
		defer func() { _ = undo(context.Background()) }()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := nd.Status()
		if st.Leader == "" {
			http.Error(w, "no leader known", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok: %s, leader %s\n", st.State, st.Leader)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/raft/", nd.Handler())
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("node: listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	base.Info("serving HTTP", "addr", ln.Addr().String(), "node", id) // addr first: what scripts look for
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	log.Info("node stopped")
	return err
}
