package migration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/nodeproc"
)

// HostProcess is one migration host as a `soakd node --component
// migration` process: the same Host an in-process Cluster runs, its guests
// installed and its migrations started by the soakd that drives it over
// HTTP. Pages go host to host over the host's own TCP streams, through
// soakd's fabric proxies; the owner record a switch-over claims stays
// soakd's, asked for on the migration's answer stream.
type HostProcess struct {
	h       *Host
	dial    components.Dialer
	log     *slog.Logger
	corrupt bool

	mu     sync.Mutex
	owners map[uint64]chan error // migration id → the answer to its ownership question
}

// HostProcessOptions configures one host process.
type HostProcessOptions struct {
	ID string
	// Addr is its fixed migration address (its entry in the peer list).
	Addr  string
	Dial  components.Dialer
	Log   *slog.Logger
	Stall time.Duration
	// CorruptDeltas plants a bug for tests: every delta this host sends has
	// a byte flipped, which the destination's verification must catch.
	CorruptDeltas bool
}

// NewHostProcess makes the host, down and empty: soakd installs its guests
// and starts it.
func NewHostProcess(o HostProcessOptions) *HostProcess {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := newHost(o.ID, clockwork.NewRealClock(), log, max(o.Stall, 5*time.Second))
	h.bind = o.Addr
	dial := o.Dial
	if dial == nil {
		dial = components.DirectDialer
	}
	return &HostProcess{h: h, dial: dial, log: log, corrupt: o.CorruptDeltas, owners: map[uint64]chan error{}}
}

// Close stops the host and frees its guests.
func (p *HostProcess) Close() error { return p.h.close() }

// HostStatus is GET /migration/v1/status.
type HostStatus struct {
	Host   string   `json:"host"`
	Up     bool     `json:"up"`
	Addr   string   `json:"addr"`
	Guests []string `json:"guests"`
}

// Status is the host's state now.
func (p *HostProcess) Status() HostStatus {
	up, guests := p.h.snapshot()
	return HostStatus{Host: p.h.ID, Up: up, Addr: p.h.Addr(), Guests: guests}
}

// startRequest is POST /migration/v1/start: the run's stall timeout,
// which bounds every read and write of the host's migrations.
type startRequest struct {
	StallTimeout time.Duration `json:"stall_timeout"`
}

// migrateRequest is POST /migration/v1/migrate.
type migrateRequest struct {
	ID     uint64 `json:"id"`
	Guest  string `json:"guest"`
	Params Params `json:"params"`
	// Destination: its host id, its migration address (dialled through
	// this process's --via proxy for it) and its HTTP address (for the
	// out-of-band resolution of a lost commit answer).
	DestID, DestAddr, DestHTTP string
	// Owned: ask soakd to claim (and release) the owner record.
	Owned bool
	// Planted bugs for tests (Params' unexported knobs).
	CorruptDeltas, ResumeBeforeClaim bool
}

// migrateEvent is one line of the answer stream: a round's progress, an
// ownership question (claim or release) or the final report.
type migrateEvent struct {
	Progress *progressEvent `json:"progress,omitempty"`
	Owner    string         `json:"owner,omitempty"`
	Report   *wireReport    `json:"report,omitempty"`
}

type progressEvent struct {
	Round    Round         `json:"round"`
	Decision Decision      `json:"decision"`
	Pending  int           `json:"pending"`
	Elapsed  time.Duration `json:"elapsed"`
}

// wireReport is a Report with its error and outcome as the wire carries
// them.
type wireReport struct {
	Report
	Error string `json:"error,omitempty"`
	Moved bool   `json:"moved"`
}

func toWire(r Report) *wireReport {
	w := &wireReport{Report: r, Moved: r.moved}
	if r.Err != nil {
		w.Error = r.Err.Error()
	}
	return w
}

func (w *wireReport) report() Report {
	r := w.Report
	r.moved = w.Moved
	if w.Error != "" {
		r.Err = errors.New(w.Error)
	}
	return r
}

// ownerAnswer is POST /migration/v1/migrations/{id}/owner.
type ownerAnswer struct {
	Error string `json:"error,omitempty"`
}

// Handler serves the host's API:
//
//	GET    /migration/v1/status                    HostStatus
//	POST   /migration/v1/guests                    a GuestSpec: install it (the host is down)
//	POST   /migration/v1/start                     a startRequest: start the host and its guests
//	POST   /migration/v1/migrate                   a migration out; answers a stream of migrateEvent lines
//	POST   /migration/v1/migrations/{id}/owner     soakd's answer to an ownership question
//	GET    /migration/v1/resolve/{id}              whether incoming migration id resumed here
func (p *HostProcess) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /migration/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, p.Status())
	})
	mux.HandleFunc("POST /migration/v1/guests", func(w http.ResponseWriter, r *http.Request) {
		var spec GuestSpec
		if err := decodeJSON(r, &spec); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if p.h.Up() {
			http.Error(w, "migration host: install a guest on a host that is down", http.StatusConflict)
			return
		}
		g, err := spec.build(p.h.clock)
		if err == nil {
			if err = p.h.install(g); err != nil {
				_ = g.free()
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /migration/v1/start", func(w http.ResponseWriter, r *http.Request) {
		var st startRequest
		if err := decodeJSON(r, &st); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if p.h.Up() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if st.StallTimeout > 0 {
			p.h.stall = st.StallTimeout // the host is down: no migration reads it now
		}
		if err := p.h.start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /migration/v1/migrate", p.serveMigrate)
	mux.HandleFunc("POST /migration/v1/migrations/{id}/owner", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		var a ownerAnswer
		if err == nil {
			err = decodeJSON(r, &a)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("migration host: bad owner answer: %v", err), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		ch, ok := p.owners[id]
		delete(p.owners, id)
		p.mu.Unlock()
		if !ok {
			http.Error(w, fmt.Sprintf("migration host: migration %d asked no ownership question", id), http.StatusNotFound)
			return
		}
		var answer error
		if a.Error != "" {
			answer = errors.New(a.Error)
		}
		ch <- answer
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /migration/v1/resolve/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "migration host: bad migration id", http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]bool{"resumed": p.h.resolve(id)})
	})
	return mux
}

// serveMigrate runs one migration out of this host and streams its
// progress, its ownership questions and its report.
func (p *HostProcess) serveMigrate(w http.ResponseWriter, r *http.Request) {
	var req migrateRequest
	if err := decodeJSON(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	var wmu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(e migrateEvent) error {
		wmu.Lock()
		defer wmu.Unlock()
		if err := enc.Encode(e); err != nil {
			return err
		}
		return rc.Flush()
	}
	pr := req.Params
	pr.corruptDeltas, pr.resumeBeforeClaim = req.CorruptDeltas || p.corrupt, req.ResumeBeforeClaim
	if req.Owned {
		pr.Owner = &askedOwner{ask: func(op string) error { return p.ask(r.Context(), req.ID, op, send) }}
	}
	progress := func(rd Round, d Decision, pending int, elapsed time.Duration) {
		_ = send(migrateEvent{Progress: &progressEvent{Round: rd, Decision: d, Pending: pending, Elapsed: elapsed}})
	}
	dst := &peerHost{name: req.DestID, addr: req.DestAddr, http: req.DestHTTP, stall: pr.StallTimeout}
	local := &localHost{Host: p.h, dial: p.dial}
	rep := local.migrateOut(r.Context(), move{id: req.ID, guest: req.Guest}, pr, dst, progress)
	_ = send(migrateEvent{Report: toWire(rep)})
}

// ask puts an ownership question to soakd on the migration's stream and
// waits for its answer (or for soakd to go).
func (p *HostProcess) ask(ctx context.Context, id uint64, op string, send func(migrateEvent) error) error {
	ch := make(chan error, 1)
	p.mu.Lock()
	p.owners[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.owners, id)
		p.mu.Unlock()
	}()
	if err := send(migrateEvent{Owner: op}); err != nil {
		return fmt.Errorf("asking soakd to %s the owner record: %w", op, err)
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("soakd went before it answered the owner %s: %w", op, ctx.Err())
	}
}

// askedOwner is the Ownership of a migration run in a host process: soakd
// holds the records.
type askedOwner struct{ ask func(op string) error }

func (o *askedOwner) Claim() error   { return o.ask("claim") }
func (o *askedOwner) Release() error { return o.ask("release") }

// peerHost is the destination as a host process sees it: its address and
// API. Only what migrateOut uses of a destination is real.
type peerHost struct {
	name, addr, http string
	stall            time.Duration
}

func (d *peerHost) Name() string { return d.name }
func (d *peerHost) Addr() string { return d.addr }
func (d *peerHost) installGuest(GuestSpec) error {
	return errors.New("a peer host is not driven from here")
}
func (d *peerHost) start() error               { return errors.New("a peer host is not driven from here") }
func (d *peerHost) stop()                      {}
func (d *peerHost) close() error               { return nil }
func (d *peerHost) Up() bool                   { return d.addr != "" }
func (d *peerHost) snapshot() (bool, []string) { return false, nil }

// resolve: the source's question after a lost commit answer. Past three
// stall timeouts without an answer, the destination has aborted the
// migration by its own stall timer (or is gone): it did not resume.
func (d *peerHost) resolve(id uint64) bool {
	resumed, _ := resolveWithin(resolveClient, d.http, id, 3*max(d.stall, 5*time.Second))
	return resumed
}

func (d *peerHost) migrateOut(context.Context, move, Params, hostNode, Progress) Report {
	return Report{Outcome: OutcomeFailed, Err: errors.New("a peer host is not driven from here")}
}

var resolveClient = &http.Client{Timeout: 10 * time.Second}

// resolveAt asks the host process at httpAddr whether incoming migration
// id resumed there; the question fences it (an incoming migration not yet
// resumed never will). known is false when the host did not answer.
func resolveAt(client *http.Client, httpAddr string, id uint64) (resumed, known bool) {
	if httpAddr == "" {
		return false, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var a struct{ Resumed bool }
	if err := nodeproc.Call(ctx, client, httpAddr, http.MethodGet, "/migration/v1/resolve/"+strconv.FormatUint(id, 10), nil, &a); err != nil {
		return false, false
	}
	return a.Resumed, true
}

// resolveWithin asks until the host answers or for d. A host that does not
// answer for longer than the stall timeout has aborted the migration by
// its own stall timer, if it still runs at all: then it did not resume.
func resolveWithin(client *http.Client, httpAddr string, id uint64, d time.Duration) (resumed, known bool) {
	deadline := time.Now().Add(d)
	for {
		if resumed, known = resolveAt(client, httpAddr, id); known || time.Now().After(deadline) {
			return resumed, known
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func decodeJSON(r *http.Request, v any) error {
	if err := nodeproc.DecodeBody(r, v); err != nil {
		return fmt.Errorf("migration host: %w", err)
	}
	return nil
}
