package migration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/nodeproc"
)

// procHost is a host that is a `soakd node --component migration` child
// process (components.migration.host_mode processes), with its guests'
// memory and workload, its listener on a fixed loopback address (chosen
// once per run) and its links to the other hosts through the fabric's
// proxies. The Cluster installs its guests, starts it, and runs each
// migration out of it over its API; a crash is a SIGKILL, which loses its
// guests as a host crash does.
type procHost struct {
	c    *Cluster
	name string
	dir  string
	addr string // its fixed migration address

	mu       sync.Mutex
	proc     *nodeproc.Proc
	httpAddr string
	up       bool
	pending  []GuestSpec // installed while down, sent at start
}

var _ hostNode = (*procHost)(nil)

// newProcHosts makes the Cluster's hosts node processes.
func (c *Cluster) newProcHosts() ([]hostNode, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("migration: host_mode processes needs soakd's own executable: %w", err)
	}
	members, err := nodeproc.Members(c.stateDir, c.cfg.Hosts)
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	c.bin = bin
	c.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	hosts := make([]hostNode, c.cfg.Hosts)
	for i := range hosts {
		name := "host-" + strconv.Itoa(i+1)
		hosts[i] = &procHost{c: c, name: name, dir: filepath.Join(c.stateDir, name), addr: members["node-"+strconv.Itoa(i+1)]}
	}
	return hosts, nil
}

func (h *procHost) Name() string { return h.name }

func (h *procHost) installGuest(spec GuestSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up {
		return fmt.Errorf("migration: %s: install a guest on a host that is down", h.name)
	}
	h.pending = append(h.pending, spec)
	return nil
}

// start spawns the host's process, installs the guests given while it was
// down and starts them.
func (h *procHost) start() error {
	c := h.c
	var members []nodeproc.Member
	for _, n := range c.hosts {
		members = append(members, nodeproc.Member{ID: n.Name(), Addr: n.(*procHost).addr})
	}
	// Pages to another host go through the fabric's proxy for the link.
	peers, err := nodeproc.PeerArgs(h.name, members, c.linkAddr)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	args := append([]string{"node", "--component", "migration", "--id", h.name, "--state-dir", h.dir, "--listen", "127.0.0.1:0"}, peers...)
	proc, err := nodeproc.Spawn(c.bin, args, c.log.With("host", h.name), nodeproc.Journal(c.event, "migration", h.name))
	if err != nil {
		return fmt.Errorf("migration: host %s: %w", h.name, err)
	}
	h.mu.Lock()
	h.proc, h.httpAddr = proc, proc.HTTPAddr
	pending := h.pending
	h.pending = nil
	h.mu.Unlock()
	for _, spec := range pending {
		if err := h.call(context.Background(), http.MethodPost, "/migration/v1/guests", spec, nil); err != nil {
			h.stop()
			return err
		}
	}
	if err := h.call(context.Background(), http.MethodPost, "/migration/v1/start", startRequest{StallTimeout: stallTimeout(c.cfg)}, nil); err != nil {
		h.stop()
		return err
	}
	h.mu.Lock()
	h.up = true
	h.mu.Unlock()
	c.log.Info("migration host process started", "host", h.name, "pid", proc.PID(), "http", proc.HTTPAddr, "addr", h.addr,
		"guests", len(pending))
	return nil
}

func (h *procHost) end(crash bool) {
	h.mu.Lock()
	proc := h.proc
	h.proc, h.httpAddr, h.up, h.pending = nil, "", false, nil
	h.mu.Unlock()
	if proc != nil {
		proc.Stop(crash)
	}
}

// stop is a crash: SIGKILL, and the guests are lost with the process.
func (h *procHost) stop() { h.end(true) }

func (h *procHost) close() error {
	h.end(false)
	return nil
}

func (h *procHost) Up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up && h.proc.Alive() // not if it died on its own
}

func (h *procHost) Addr() string {
	if !h.Up() {
		return ""
	}
	return h.addr
}

func (h *procHost) snapshot() (bool, []string) {
	if !h.Up() {
		return false, nil
	}
	var st HostStatus
	if err := h.call(context.Background(), http.MethodGet, "/migration/v1/status", nil, &st); err != nil {
		return false, nil
	}
	return st.Up, st.Guests
}

func (h *procHost) resolve(id uint64) bool {
	h.mu.Lock()
	addr := h.httpAddr
	h.mu.Unlock()
	resumed, _ := resolveAt(h.c.http, addr, id)
	return resumed
}

// migrateOut has the host process run the migration, and answers its
// ownership questions with the Cluster's records (p.Owner).
func (h *procHost) migrateOut(ctx context.Context, mv move, p Params, dst hostNode, progress Progress) Report {
	fail := func(err error) Report { return Report{ID: mv.id, Outcome: OutcomeFailed, Err: err} }
	d, ok := dst.(*procHost)
	if !ok {
		return fail(fmt.Errorf("migration: %s is not a host process", dst.Name()))
	}
	d.mu.Lock()
	destHTTP := d.httpAddr
	d.mu.Unlock()
	if !d.Up() {
		return fail(fmt.Errorf("migration: %s is down", d.name))
	}
	if !h.Up() {
		return fail(fmt.Errorf("migration: %s is down", h.name))
	}
	req := migrateRequest{ID: mv.id, Guest: mv.guest, Params: p, DestID: d.name, DestAddr: d.addr, DestHTTP: destHTTP,
		Owned: p.Owner != nil, CorruptDeltas: p.corruptDeltas, ResumeBeforeClaim: p.resumeBeforeClaim}
	body, err := json.Marshal(req)
	if err != nil {
		return fail(err)
	}
	h.mu.Lock()
	addr := h.httpAddr
	h.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hreq, err := http.NewRequestWithContext(sctx, http.MethodPost, "http://"+addr+"/migration/v1/migrate", bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	resp, err := h.c.http.Do(hreq)
	if err != nil {
		return fail(fmt.Errorf("migration: %s: %w", h.name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fail(fmt.Errorf("migration: %s: %s: %s", h.name, resp.Status, bytes.TrimSpace(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e migrateEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			cancel()
			return h.settle(mv, p, d, fmt.Errorf("unreadable answer: %w", err))
		}
		switch {
		case e.Progress != nil:
			progress(e.Progress.Round, e.Progress.Decision, e.Progress.Pending, e.Progress.Elapsed)
		case e.Owner != "":
			if !h.answerOwner(ctx, mv.id, e.Owner, p.Owner) {
				cancel() // its question unanswered, the host ends the migration; settled below
			}
		case e.Report != nil:
			return e.Report.report()
		}
	}
	return h.settle(mv, p, d, cmpErr(sc.Err(), io.ErrUnexpectedEOF))
}

// settle decides where the guest runs when the source process's report
// was lost (it died, or its stream broke), as switchOver does after a lost
// commit answer: the destination, asked (which fences it), says whether it
// resumed the guest, and the owner record follows. A destination that is
// gone took whatever it had with it: the record decides.
func (h *procHost) settle(mv move, p Params, d *procHost, cause error) Report {
	rep := Report{ID: mv.id, Outcome: OutcomeUnknown, Err: fmt.Errorf("migration: %s's report lost: %w", h.name, cause)}
	d.mu.Lock()
	destHTTP := d.httpAddr
	d.mu.Unlock()
	resumed, known := resolveWithin(h.c.http, destHTTP, mv.id, 3*p.StallTimeout)
	cl, _ := p.Owner.(*claim)
	claimed := cl != nil && cl.known && cl.final == mv.to
	switch {
	case known && resumed:
		rep.moved = true
	case !known && d.Up():
		// Alive but mute past its stall timer: it aborted, or the audit
		// will say otherwise.
		h.c.log.Error("a migration's destination does not answer where its guest runs", "id", mv.id, "guest", mv.guest,
			"destination", d.name)
		if claimed {
			rep.Err = fmt.Errorf("%w; owner record left claimed for %s", rep.Err, d.name)
		}
	case !known && claimed:
		rep.moved = true // the destination is down: its restart recreates the guest from the record
	case claimed:
		if err := cl.Release(); err != nil {
			rep.Err = fmt.Errorf("%w; ownership: %w", rep.Err, err)
		}
	}
	if !rep.moved && cl == nil && !known {
		rep.Outcome = OutcomeFailed
	}
	return rep
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// answerOwner claims or releases the owner record for the host process
// and tells it how that went; false when the answer did not reach it.
func (h *procHost) answerOwner(ctx context.Context, id uint64, op string, o Ownership) bool {
	var err error
	switch {
	case o == nil:
		err = errors.New("no owner records")
	case op == "claim":
		err = o.Claim()
	case op == "release":
		err = o.Release()
	default:
		err = fmt.Errorf("unknown owner question %q", op)
	}
	var a ownerAnswer
	if err != nil {
		a.Error = err.Error()
	}
	// The record flipped whatever the migration's deadline: the answer
	// must go out past it.
	actx := context.WithoutCancel(ctx)
	if cerr := h.call(actx, http.MethodPost, "/migration/v1/migrations/"+strconv.FormatUint(id, 10)+"/owner", a, nil); cerr != nil {
		h.c.log.Warn("answering a host process's owner question", "host", h.name, "op", op, "err", cerr)
		return false
	}
	return true
}

// call is one request to the host process's API.
func (h *procHost) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	h.mu.Lock()
	addr := h.httpAddr
	h.mu.Unlock()
	if addr == "" {
		return fmt.Errorf("migration: %s is not running", h.name)
	}
	if err := nodeproc.Call(ctx, h.c.http, addr, method, path, in, out); err != nil {
		return fmt.Errorf("migration: %s: %w", h.name, err)
	}
	return nil
}

// ProcessTargets implements components.ProcessTargets: every host process,
// with its pid and address now (none in host_mode inprocess).
func (c *Cluster) ProcessTargets() []components.ProcessTarget {
	c.mu.Lock()
	hosts := c.hosts
	c.mu.Unlock()
	var out []components.ProcessTarget
	for _, n := range hosts {
		h, ok := n.(*procHost)
		if !ok {
			return nil
		}
		h.mu.Lock()
		out = append(out, nodeproc.Target(h.name, true, h.proc, h.httpAddr))
		h.mu.Unlock()
	}
	return out
}

// adminTimeout bounds one call to a host process's API (installing a
// guest fills its memory).
const adminTimeout = time.Minute
