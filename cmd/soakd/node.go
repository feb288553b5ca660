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
	"sync"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/migration"
	"github.com/soakd/soakd/internal/components/pbft"
	"github.com/soakd/soakd/internal/components/raft"
	"github.com/soakd/soakd/internal/faults/leak"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/offheap"
)

// newNodeCmd is `soakd node`: one node of a component as its own process.
func newNodeCmd(stderr io.Writer) *cobra.Command {
	var component, id, stateDir, listen, planted string
	var peers, via []string
	var seed uint64
	var maxKeys int
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one node of a component as its own process (raft, pbft, migration)",
		Long: `Run one node of a component as its own process, with its own state dir,
protocol address and HTTP listener: the way to run a soak's nodes as
processes or as pods, and to soak a node's process apart from soakd's. The
HTTP listener serves /metrics, /healthz, /debug/pprof/ and the node's API:

  raft  POST /raft/v1/op, GET /raft/v1/status
  pbft  GET /pbft/v1/status, GET /pbft/v1/events (the stream soakd's
        clients and checkers follow), POST /pbft/v1/behavior and
        /pbft/v1/message-faults (faults); clients send requests to the
        replica's protocol address
  migration  GET /migration/v1/status, POST /migration/v1/guests and
        /migration/v1/start (soakd installs the host's guests and starts
        it), POST /migration/v1/migrate (a migration out, answered with a
        stream of its progress), GET /migration/v1/resolve/{id}

Every member is given the same --peer list, its own address included. A
Raft member that is brand new bootstraps the cluster with it. A member
restarted on its state dir (after a SIGKILL, say) recovers from its disk
and rejoins. PBFT replicas derive their keys from --seed, which must be
the run's seed (run.seed) on every replica and on soakd. SIGTERM or SIGINT
stop it gracefully.`,
		Example: `  soakd node --component raft --id node-1 --state-dir /var/lib/soakd/node-1 \
    --listen 127.0.0.1:9101 \
    --peer node-1=127.0.0.1:7001 --peer node-2=127.0.0.1:7002 --peer node-3=127.0.0.1:7003

  soakd node --component pbft --id node-1 --seed 42 --state-dir /var/lib/soakd/pbft-1 \
    --peer node-1=127.0.0.1:7101 --peer node-2=127.0.0.1:7102 \
    --peer node-3=127.0.0.1:7103 --peer node-4=127.0.0.1:7104`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if component != "raft" && component != "pbft" && component != "migration" {
				return usageError{fmt.Errorf("--component: raft, pbft or migration run as node processes, not %q", component)}
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
			o := nodeOptions{id: id, dir: stateDir, listen: listen, peers: pm, via: vm, planted: leakPlan, seed: seed, maxKeys: maxKeys}
			switch component {
			case "pbft":
				o.diverge = os.Getenv(PBFTDivergeEnv) == id
				return runNode(ctx, stderr, "pbft", o, startPBFTNode)
			case "migration":
				o.corruptDeltas = os.Getenv(MigrationCorruptEnv) == id
				return runNode(ctx, stderr, "migration", o, startMigrationNode)
			}
			return runNode(ctx, stderr, "raft", o, startRaftNode)
		},
	}
	f := cmd.Flags()
	f.StringVar(&component, "component", "raft", "the component the node belongs to")
	f.StringVar(&id, "id", "", "this node's id, one of the --peer ids")
	f.StringVar(&stateDir, "state-dir", "", "the node's own state dir")
	f.StringVar(&listen, "listen", "127.0.0.1:0", "HTTP address: /metrics, /healthz, /debug/pprof/, the node API")
	f.StringArrayVar(&peers, "peer", nil, "id=host:port of a member's protocol address, every member's included (repeat)")
	f.StringArrayVar(&via, "via", nil, "peer-host:port=host:port: dial that peer's address through this one (soakd's fault fabric proxy for the link; repeat)")
	f.Uint64Var(&seed, "seed", 0, "pbft: the run's seed, from which every replica and soakd derive the same keys")
	f.IntVar(&maxKeys, "max-keys", 0, "pbft: the replicated store's bound on keys (load.pbft.keys; 0: the default)")
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

// PBFTDivergeEnv plants a bug in one PBFT node process for end-to-end
// tests ("node-3"): its store corrupts what it puts, so its results and
// checkpoints differ from the others'. PBFT masks one such replica; the
// checkers, fed by the process's event stream, must not. Like NodeLeakEnv,
// a test hook and not a config option.
const PBFTDivergeEnv = "SOAKD_TEST_PBFT_DIVERGE"

// MigrationCorruptEnv plants a bug in one migration host process for
// end-to-end tests ("host-1"): every XBZRLE delta it sends has a byte
// flipped, which the destination's byte-exact verification must catch.
const MigrationCorruptEnv = "SOAKD_TEST_MIGRATION_CORRUPT_DELTAS"

// nodeOptions is one node process's command line, parsed.
type nodeOptions struct {
	id, dir, listen string
	peers, via      map[string]string
	planted         *leak.Planted
	seed            uint64
	maxKeys         int
	diverge         bool
	corruptDeltas   bool
}

// startedNode is a component's node running in this process: its API,
// its health and how to stop it.
type startedNode struct {
	api     http.Handler
	prefix  string
	healthz func() (string, error)
	close   func()
}

func startRaftNode(o nodeOptions, log *slog.Logger, reg prometheus.Registerer, dial components.Dialer) (*startedNode, error) {
	nd, err := raft.StartNode(raft.NodeOptions{ID: o.id, Dir: o.dir, Peers: o.peers, Logger: log, Metrics: reg, Dial: dial})
	if err != nil {
		return nil, err
	}
	return &startedNode{api: nd.Handler(), prefix: "/raft/", close: func() { _ = nd.Close() },
		healthz: func() (string, error) {
			st := nd.Status()
			if st.Leader == "" {
				return "", errors.New("no leader known")
			}
			return fmt.Sprintf("%s, leader %s", st.State, st.Leader), nil
		}}, nil
}

func startPBFTNode(o nodeOptions, log *slog.Logger, reg prometheus.Registerer, dial components.Dialer) (*startedNode, error) {
	ho := pbft.HostOptions{ID: o.id, Dir: o.dir, Seed: o.seed, Peers: o.peers, MaxKeys: o.maxKeys, Dial: dial, Logger: log, Metrics: reg}
	if o.diverge {
		ho.Diverge = true
		log.Warn("planting a bug for a test: this replica's store corrupts what it puts")
	}
	h, err := pbft.StartHost(ho)
	if err != nil {
		return nil, err
	}
	return &startedNode{api: h.Handler(), prefix: "/pbft/", close: h.Close,
		healthz: func() (string, error) {
			st := h.Status()
			if !st.Running {
				return "", errors.New("replica stopped (its disk failed)")
			}
			return fmt.Sprintf("view %d, primary node-%d, executed seq %d", st.Status.View, st.Status.Primary+1, st.Status.LastExecuted), nil
		}}, nil
}

func startMigrationNode(o nodeOptions, log *slog.Logger, _ prometheus.Registerer, dial components.Dialer) (*startedNode, error) {
	addr, ok := o.peers[o.id]
	if !ok {
		return nil, fmt.Errorf("migration: no --peer for --id %q: it names the host's own migration address", o.id)
	}
	if o.corruptDeltas {
		log.Warn("planting a bug for a test: this host corrupts every delta it sends")
	}
	h := migration.NewHostProcess(migration.HostProcessOptions{ID: o.id, Addr: addr, Dial: dial, Log: log, CorruptDeltas: o.corruptDeltas})
	return &startedNode{api: h.Handler(), prefix: "/migration/", close: func() { _ = h.Close() },
		healthz: func() (string, error) {
			st := h.Status()
			if !st.Up {
				return "", errors.New("host not started (soakd starts it once its guests are installed)")
			}
			return fmt.Sprintf("up at %s with %d guests", st.Addr, len(st.Guests)), nil
		}}, nil
}

// runNode runs one node of component until ctx ends: start builds it,
// and this serves its API beside /metrics, /healthz and /debug/pprof/.
func runNode(ctx context.Context, stderr io.Writer, component string, o nodeOptions,
	start func(nodeOptions, *slog.Logger, prometheus.Registerer, components.Dialer) (*startedNode, error)) error {
	base := slog.New(slog.NewTextHandler(stderr, nil))
	log := base.With("node", o.id, "component", component)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: leakcheck.OffheapResidentMetric,
			Help: "Resident bytes of the memory this node maps outside the Go heap for the system it runs (a migration host's guests): the leak checker leaves it out of the node's RSS signal."},
			func() float64 { return float64(offheap.Resident()) }))
	dial := func(ctx context.Context, from, to, addr string) (net.Conn, error) {
		if v, ok := o.via[addr]; ok {
			addr = v
		}
		return components.DirectDialer(ctx, from, to, addr)
	}
	nd, err := start(o, log, reg, dial)
	if err != nil {
		return err
	}
	closeNode := sync.OnceFunc(nd.close)
	defer closeNode()
	if o.planted != nil {
		log.Warn("planting a leak for a test: this node leaks on purpose", "leak", o.planted.Params, "for", o.planted.For)
		undo, err := leak.Plant(ctx, *o.planted, clockwork.NewRealClock(), log)
		if err != nil {
			return err
		}
		defer func() { _ = undo(context.Background()) }()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		line, err := nd.healthz()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok: %s\n", line)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle(nd.prefix, nd.api)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("node: listen %s: %w", o.listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	base.Info("serving HTTP", "addr", ln.Addr().String(), "node", o.id) // addr first: what scripts look for
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// The node first: it ends the long-lived event streams Shutdown would wait for.
	closeNode()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	log.Info("node stopped")
	return err
}
