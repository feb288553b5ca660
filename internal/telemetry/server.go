package telemetry

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	pyroscopepprof "github.com/grafana/pyroscope-go/http/pprof"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultListen is the daemon's default HTTP address.
const DefaultListen = "127.0.0.1:9477"

// Paging bounds of /api/v1/events.
const (
	defaultEventsLimit = 100
	maxEventsLimit     = 1000
)

// ServerOptions wires the server to the run. Every hook may be nil.
type ServerOptions struct {
	Addr     string
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Status returns the /api/v1/status document.
	Status func() any
	// Alerts returns the /api/v1/alerts document.
	Alerts func() any
	// Events returns up to limit events after seq, optionally of one type,
	// and the seq to pass as after for the next page.
	Events func(after int64, limit int, typ string) (events any, next int64, err error)
	// Ready reports whether the run is up (readyz).
	Ready func() bool
	// Token guards mutating endpoints (Authorization: Bearer <token>).
	Token string
	// Checkpoint forces a checkpoint (POST /api/v1/checkpoint).
	Checkpoint func() error
	// Report, when set, serves the run report at GET /report (HTML;
	// ?format=md or json for the others).
	Report http.Handler
}

// Server is the HTTP face of the daemon.
type Server struct {
	o    ServerOptions
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
	once sync.Once
}

// NewServer builds the handler tree; Start binds it.
func NewServer(o ServerOptions) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Addr == "" {
		o.Addr = DefaultListen
	}
	s := &Server{o: o, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Bounded so a stuck client cannot pin goroutines over a long run;
		// generous enough for a 30 s CPU profile.
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	reg := s.o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.o.Ready != nil && !s.o.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	// pyroscope-go holds the CPU profiler while it pushes; its handler
	// shares it instead of failing with "cpu profiling already in use".
	mux.HandleFunc("GET /debug/pprof/profile", pyroscopepprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, call(s.o.Status))
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"alerts": call(s.o.Alerts)})
	})
	mux.HandleFunc("GET /api/v1/events", s.events)
	if s.o.Report != nil {
		mux.Handle("GET /report", s.o.Report)
	}
	mux.Handle("POST /api/v1/checkpoint", s.requireToken(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.o.Checkpoint == nil {
			http.Error(w, "no run", http.StatusServiceUnavailable)
			return
		}
		if err := s.o.Checkpoint(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "checkpointed"})
	})))
	return mux
}

func call(f func() any) any {
	if f == nil {
		return []any{}
	}
	return f()
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit := int64(0), defaultEventsLimit
	var err error
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "after: must be a non-negative integer"})
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxEventsLimit {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit: must be 1..%d", maxEventsLimit)})
			return
		}
	}
	if s.o.Events == nil {
		writeJSON(w, http.StatusOK, map[string]any{"events": []any{}, "next_after": after})
		return
	}
	evs, next, err := s.o.Events(after, limit, q.Get("type"))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs, "next_after": next})
}

// requireToken rejects requests without the run's bearer token. With no
// token configured, mutating endpoints are closed rather than open.
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.o.Token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="soakd"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token (see <state-dir>/token)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Start binds the listen address, so a port in use is reported at start-up,
// then serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.o.Addr, err)
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			s.o.Logger.Error("http server failed", "err", err)
		}
	}()
	return nil
}

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.o.Addr
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting, waits for in-flight requests until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	var err error
	s.once.Do(func() {
		err = s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		<-s.done
	})
	return err
}
