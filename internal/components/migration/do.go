package migration

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

// Journal event types the component writes.
const (
	// EventProgress is one pre-copy round: what it sent, what the guest
	// dirtied meanwhile, and what the convergence rule decided.
	EventProgress = "migration_progress"
	// EventMigration is one finished migration.
	EventMigration = "migration_finished"
)

// InvariantPlacement: a guest runs on exactly one host, the one the
// component records for it.
const InvariantPlacement = "migration_placement"

// Do runs op "migrate": key kN picks guest N (mod the guests), the
// destination is the host placement picks (package placement: up, room,
// anti-affinity, then balance, link bandwidth and affinity).
// Outcome ok: the guest runs on the destination, verified; failed: it runs
// on its source, unchanged; unknown: the commit's answer was lost and the
// management plane (this component) resolved where it runs.
func (c *Cluster) Do(ctx context.Context, op components.Op) components.Result {
	if op.Name != "migrate" {
		return components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("migration: unknown op %q", op.Name)}
	}
	n, err := strconv.Atoi(strings.TrimPrefix(op.Key, "k"))
	if err != nil || n < 0 {
		return components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("migration: bad key %q", op.Key)}
	}
	guest := "guest-" + strconv.Itoa(n%c.cfg.Guests)
	src, dst, id, err := c.begin(guest)
	if err != nil {
		c.m.outcomes.WithLabelValues(OutcomeFailed).Inc()
		return components.Result{Outcome: components.OutcomeFailed, Err: err}
	}
	defer c.end(guest, id)
	rep := c.run(ctx, id, guest, src, dst)
	c.observe(rep, guest, src, dst)
	c.remember(rep, guest, src, dst)
	switch rep.Outcome {
	case OutcomeOK:
		return components.Result{Outcome: components.OutcomeOK}
	case OutcomeUnknown:
		return components.Result{Outcome: components.OutcomeUnknown, Err: rep.Err}
	}
	return components.Result{Outcome: components.OutcomeFailed, Err: rep.Err}
}

// begin reserves a guest and picks its destination by placement.
func (c *Cluster) begin(guest string) (src, dst int, id uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy[guest] {
		return 0, 0, 0, fmt.Errorf("migration: %s is already migrating", guest)
	}
	src = c.where[guest]
	if !c.hosts[src].Up() {
		return 0, 0, 0, fmt.Errorf("migration: %s's host %s is down", guest, c.hosts[src].ID)
	}
	d, err := c.pool.Place(guest)
	if err != nil {
		return 0, 0, 0, err
	}
	id = c.nextID.Add(1)
	c.busy[guest] = true
	c.inFlight[id] = [2]int{src, d.To}
	c.placed[id] = d.Reason
	c.reserved[id] = c.pool.Reserve(guest, d.To)
	return src, d.To, id, nil
}

func (c *Cluster) end(guest string, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, guest)
	delete(c.inFlight, id)
	delete(c.placed, id)
	if done, ok := c.reserved[id]; ok {
		done(false) // a move was already recorded by run
		delete(c.reserved, id)
	}
}

// run migrates the guest and moves it in the books when it moved.
func (c *Cluster) run(ctx context.Context, id uint64, guest string, src, dst int) Report {
	sh, dh := c.hosts[src], c.hosts[dst]
	g, ok := sh.guest(guest)
	if !ok {
		return Report{ID: id, Outcome: OutcomeFailed, Err: fmt.Errorf("migration: %s is not on %s", guest, sh.ID)}
	}
	mctx, done, ok := sh.beginOutgoing(ctx, id)
	if !ok {
		return Report{ID: id, Outcome: OutcomeFailed, Err: fmt.Errorf("migration: %s is down", sh.ID)}
	}
	defer done()
	c.mu.Lock()
	prior := c.links[[2]int{src, dst}]
	c.mu.Unlock()
	p := Params{Streams: c.cfg.Streams, Codec: c.cfg.Compression, CacheBytes: int(c.cfg.XBZRLECache),
		DirtyLimit: c.cfg.DirtyLimit.PerSecond(), PriorBandwidth: prior, StallTimeout: stallTimeout(c.cfg),
		Edge: c.cfg.GuestImage == "" && c.cfg.DirtyPattern != "random",
		Policy: Policy{DowntimeLimit: c.cfg.DowntimeLimit.Std(), AutoConverge: c.cfg.AutoConverge,
			ProgressTimeout: c.cfg.ProgressTimeout.Std(), Force: c.cfg.OnTimeout == "force",
			CompletionTimeout: completionTimeout(c.cfg, g.Size())}}
	dial := func(ctx context.Context, stream int) (net.Conn, error) {
		addr := dh.Addr()
		if addr == "" {
			return nil, fmt.Errorf("%s is down", dh.ID)
		}
		return c.dial(ctx, sh.ID, dh.ID, addr)
	}
	progress := func(r Round, d Decision, pending int, elapsed time.Duration) {
		c.m.roundObserved(r, d)
		c.event(EventProgress, map[string]any{"id": id, "guest": guest, "source": sh.ID, "destination": dh.ID,
			"round": r.N, "pages_sent": r.Pages, "wire_bytes": r.WireBytes, "dirtied_pages": r.Dirtied,
			"pending_pages": pending, "round_seconds": r.Took.Seconds(), "elapsed_seconds": elapsed.Seconds(),
			"predicted_bandwidth": d.PredictedBandwidth, "predicted_downtime_seconds": d.PredictedDowntime.Seconds(),
			"throttle": d.Throttle, "decision": d.Action.String(), "rule": d.Rule})
	}
	p.corruptDeltas = c.corruptDeltas.Load()
	rep := migrate(mctx, id, g, p, dial, dh.resolve, progress)
	if rep.Moved() {
		if err := sh.release(guest); err != nil {
			c.log.Warn("freeing a migrated guest's source memory", "guest", guest, "err", err)
		}
		c.mu.Lock()
		c.where[guest] = dst
		c.reserved[id](true)
		delete(c.reserved, id)
		c.mu.Unlock()
	}
	if bw := rep.Bandwidth(); bw > 0 {
		c.mu.Lock()
		k := [2]int{src, dst}
		if old := c.links[k]; old > 0 {
			bw = 0.5*old + 0.5*bw
		}
		c.links[k] = bw
		c.pool.SetBandwidth(src, dst, bw)
		c.mu.Unlock()
	}
	return rep
}

// completionTimeout is completion_timeout_per_gib for the guest's size, but
// never less than the progress timeout: a small guest among many
// migrations in flight must not be cancelled in a second.
func completionTimeout(m config.MigrationComponent, size int) time.Duration {
	return max(time.Duration(float64(size)/(1<<30)*float64(m.CompletionTimeout.Std())), m.ProgressTimeout.Std())
}

// observe records a finished migration: metrics, journal, and the
// invariants it and the placement must hold.
func (c *Cluster) observe(rep Report, guest string, src, dst int) {
	c.m.migrationObserved(rep)
	c.mu.Lock()
	reason := c.placed[rep.ID]
	c.mu.Unlock()
	fields := map[string]any{"id": rep.ID, "guest": guest, "source": c.hosts[src].ID, "destination": c.hosts[dst].ID,
		"placement": reason,
		"outcome":   rep.Outcome, "moved": rep.Moved(), "rounds": len(rep.Rounds), "total_seconds": rep.Total.Seconds(), "verify_seconds": rep.Verify.Seconds(),
		"downtime_seconds": rep.Downtime.Seconds(), "heartbeat_gap_seconds": rep.HeartbeatGap.Seconds(),
		"raw_bytes": rep.RawBytes, "wire_bytes": rep.WireBytes, "zero_pages": rep.ZeroPages, "throttle": rep.Throttle}
	if rep.Err != nil {
		fields["error"] = rep.Err.Error()
	}
	c.event(EventMigration, fields)
	if rep.Invariant != "" {
		c.violation(rep.Invariant, map[string]any{"id": rep.ID, "guest": guest, "first_differing_pages": rep.Mismatch,
			"source": c.hosts[src].ID, "destination": c.hosts[dst].ID})
	}
	if err := c.checkPlacement(); err != nil {
		c.violation(InvariantPlacement, map[string]any{"guest": guest, "detail": err.Error()})
	}
}

func (c *Cluster) violation(invariant string, fields map[string]any) {
	c.m.violations.WithLabelValues("migration", invariant).Inc()
	fields["component"], fields["invariant"] = "migration", invariant
	c.log.Error("migration invariant violated", "invariant", invariant, "fields", fields)
	c.event(components.EventInvariantViolation, fields)
}

// checkPlacement: every guest runs on exactly one host, the one recorded.
func (c *Cluster) checkPlacement() error {
	c.mu.Lock()
	where := make(map[string]int, len(c.where))
	for g, h := range c.where {
		where[g] = h
	}
	c.mu.Unlock()
	seen := map[string]int{}
	for i, h := range c.hosts {
		for _, g := range h.guestIDs() {
			if j, dup := seen[g]; dup {
				return fmt.Errorf("%s is on %s and %s", g, c.hosts[j].ID, h.ID)
			}
			seen[g] = i
			if w, ok := where[g]; !ok || w != i {
				return fmt.Errorf("%s runs on %s, the books say %s", g, h.ID, c.hosts[where[g]].ID)
			}
		}
	}
	for g, w := range where {
		if _, ok := seen[g]; !ok {
			return fmt.Errorf("%s runs nowhere (the books say %s)", g, c.hosts[w].ID)
		}
	}
	return nil
}

// Summary is the component's part of the status document.
type Summary struct {
	Line       string           `json:"line"`
	HostsUp    int              `json:"hosts_up"`
	Hosts      int              `json:"hosts"`
	GuestsOn   map[string]int   `json:"guests_per_host"`
	InFlight   int              `json:"in_flight"`
	Migrations map[string]int64 `json:"migrations"`
	Last       *LastMigration   `json:"last,omitempty"`
}

// LastMigration is the latest finished migration.
type LastMigration struct {
	Guest           string  `json:"guest"`
	From            string  `json:"from"`
	To              string  `json:"to"`
	Outcome         string  `json:"outcome"`
	Rounds          int     `json:"rounds"`
	TotalSeconds    float64 `json:"total_seconds"`
	DowntimeSeconds float64 `json:"downtime_seconds"`
	WireMBps        float64 `json:"wire_mb_per_s"`
	Error           string  `json:"error,omitempty"`
}

func (c *Cluster) remember(rep Report, guest string, src, dst int) {
	l := &LastMigration{Guest: guest, From: c.hosts[src].ID, To: c.hosts[dst].ID, Outcome: rep.Outcome,
		Rounds: len(rep.Rounds), TotalSeconds: rep.Total.Seconds(), DowntimeSeconds: rep.Downtime.Seconds(),
		WireMBps: rep.Bandwidth() / 1e6}
	if rep.Err != nil {
		l.Error = rep.Err.Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[rep.Outcome]++
	c.last = l
}

// Summary implements components.Summarizer.
func (c *Cluster) Summary() any {
	s := Summary{Hosts: len(c.hosts), GuestsOn: map[string]int{}, Migrations: map[string]int64{}}
	for _, h := range c.hosts {
		if h.Up() {
			s.HostsUp++
		}
	}
	c.mu.Lock()
	for _, h := range c.where {
		s.GuestsOn[c.hosts[h].ID]++
	}
	s.InFlight = len(c.inFlight)
	for _, o := range []string{OutcomeOK, OutcomeFailed, OutcomeUnknown} {
		s.Migrations[o] = c.counts[o]
	}
	if c.last != nil {
		l := *c.last
		s.Last = &l
	}
	c.mu.Unlock()
	s.Line = fmt.Sprintf("%d/%d hosts up, migrations ok %d failed %d unknown %d", s.HostsUp, s.Hosts,
		s.Migrations[OutcomeOK], s.Migrations[OutcomeFailed], s.Migrations[OutcomeUnknown])
	if l := s.Last; l != nil {
		s.Line += fmt.Sprintf("; last %s %s→%s %s in %.2fs, downtime %.0fms", l.Guest, l.From, l.To, l.Outcome,
			l.TotalSeconds, 1000*l.DowntimeSeconds)
	}
	return s
}
