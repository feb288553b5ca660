package migration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/migration/codec"
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
// component's books record for it (none while that host is down).
const InvariantPlacement = "migration_placement"

// Do runs op "migrate": key kN picks guest N (mod the guests), the
// destination is the host placement picks (package placement: up, room,
// anti-affinity, then balance, link bandwidth and affinity).
// Outcome ok: the guest runs on the destination, verified; failed: it runs
// on its source, unchanged; unknown: the commit's answer was lost and the
// management plane (this component) resolved where it runs. With an
// ownership store the guest's owner record is claimed for the destination
// before it resumes there; every migration ends with an audit of its guest
// against the books and the record.
func (c *Cluster) Do(ctx context.Context, op components.Op) components.Result {
	if op.Name != "migrate" {
		return components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("migration: unknown op %q", op.Name)}
	}
	n, err := strconv.Atoi(strings.TrimPrefix(op.Key, "k"))
	if err != nil || n < 0 {
		return components.Result{Outcome: components.OutcomeFailed, Err: fmt.Errorf("migration: bad key %q", op.Key)}
	}
	guest := guestName(n % c.cfg.Guests)
	mv, err := c.begin(guest)
	if err != nil {
		c.m.outcomes.WithLabelValues(OutcomeFailed).Inc()
		return components.Result{Outcome: components.OutcomeFailed, Err: err}
	}
	c.writeIntent(intent{ID: mv.id, Guest: guest, Source: c.hosts[mv.src].Name(), Destination: c.hosts[mv.dst].Name(),
		Generation: mv.from.Gen, Started: time.Now()})
	rep, ch := c.run(ctx, mv)
	c.end(mv)
	c.removeIntent(guest)
	c.observe(rep, mv, ch)
	c.remember(rep, mv)
	switch rep.Outcome {
	case OutcomeOK:
		return components.Result{Outcome: components.OutcomeOK}
	case OutcomeUnknown:
		return components.Result{Outcome: components.OutcomeUnknown, Err: rep.Err}
	}
	return components.Result{Outcome: components.OutcomeFailed, Err: rep.Err}
}

// move is one migration as the books see it.
type move struct {
	id       uint64
	guest    string
	src, dst int
	from, to owner // the owner record before and after
	reason   string
}

// begin reserves a guest and picks its destination by placement.
func (c *Cluster) begin(guest string) (move, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy[guest] {
		return move{}, fmt.Errorf("migration: %s is already migrating", guest)
	}
	src := c.where[guest]
	if !c.hosts[src].Up() {
		return move{}, fmt.Errorf("migration: %s's host %s is down", guest, c.hosts[src].Name())
	}
	d, err := c.pool.Place(guest)
	if err != nil {
		return move{}, err
	}
	mv := move{id: c.nextID.Add(1), guest: guest, src: src, dst: d.To, reason: d.Reason,
		from: owner{Host: c.hosts[src].Name(), Gen: c.gen[guest]}, to: owner{Host: c.hosts[d.To].Name(), Gen: c.gen[guest] + 1}}
	c.busy[guest] = true
	c.epoch[guest]++
	c.inFlight[mv.id] = [2]int{src, d.To}
	c.reserved[mv.id] = c.pool.Reserve(guest, d.To)
	return mv, nil
}

func (c *Cluster) end(mv move) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, mv.guest)
	c.epoch[mv.guest]++
	delete(c.inFlight, mv.id)
	if done, ok := c.reserved[mv.id]; ok {
		done(false) // a move was already recorded by run
		delete(c.reserved, mv.id)
	}
}

// run migrates the guest with the codec it chooses, and moves it in the
// books when it moved.
func (c *Cluster) run(ctx context.Context, mv move) (Report, codec.Choice) {
	sh, dh := c.hosts[mv.src], c.hosts[mv.dst]
	k := [2]int{mv.src, mv.dst}
	ch := c.chooseCodec(k)
	c.mu.Lock()
	prior := c.links[k]
	c.mu.Unlock()
	p := Params{Streams: c.cfg.Streams, Codec: ch.Name, CacheBytes: int(c.cfg.XBZRLECache),
		DirtyLimit: c.cfg.DirtyLimit.PerSecond(), PriorBandwidth: prior, StallTimeout: stallTimeout(c.cfg),
		Edge: c.cfg.GuestImage == "" && c.cfg.DirtyPattern != "random",
		Policy: Policy{DowntimeLimit: c.cfg.DowntimeLimit.Std(), AutoConverge: c.cfg.AutoConverge,
			ProgressTimeout: c.cfg.ProgressTimeout.Std(), Force: c.cfg.OnTimeout == "force",
			CompletionTimeout: completionTimeout(c.cfg, c.guestSize(mv.guest))}}
	var cl *claim
	if c.owners != nil {
		cl = &claim{store: c.owners, life: c.life, client: guestIndex(mv.guest), guest: mv.guest, from: mv.from, to: mv.to,
			count: func(r string) { c.m.flips.WithLabelValues(r).Inc() }}
		p.Owner = cl
	}
	progress := func(r Round, d Decision, pending int, elapsed time.Duration) {
		c.m.roundObserved(r, d)
		c.event(EventProgress, map[string]any{"id": mv.id, "guest": mv.guest, "source": sh.Name(), "destination": dh.Name(),
			"round": r.N, "pages_sent": r.Pages, "wire_bytes": r.WireBytes, "dirtied_pages": r.Dirtied,
			"pending_pages": pending, "round_seconds": r.Took.Seconds(), "elapsed_seconds": elapsed.Seconds(),
			"predicted_bandwidth": d.PredictedBandwidth, "predicted_downtime_seconds": d.PredictedDowntime.Seconds(),
			"throttle": d.Throttle, "decision": d.Action.String(), "rule": d.Rule})
	}
	p.corruptDeltas = c.corruptDeltas.Load()
	p.resumeBeforeClaim = c.resumeBeforeClaim.Load()
	rep := sh.migrateOut(ctx, mv, p, dh, progress)
	c.mu.Lock()
	switch {
	case rep.Moved():
		c.where[mv.guest], c.gen[mv.guest] = mv.dst, mv.to.Gen
		c.reserved[mv.id](true)
		delete(c.reserved, mv.id)
	case cl != nil && cl.known && cl.final.Host == sh.Name():
		c.gen[mv.guest] = cl.final.Gen // released, or changed under us
	}
	if bw := rep.Bandwidth(); bw > 0 {
		if old := c.links[k]; old > 0 {
			bw = 0.5*old + 0.5*bw
		}
		c.links[k] = bw
		c.pool.SetBandwidth(mv.src, mv.dst, bw)
	}
	c.mu.Unlock()
	c.learnCapacity(k, rep)
	return rep, ch
}

// completionTimeout is completion_timeout_per_gib for the guest's size, but
// never less than the progress timeout: a small guest among many
// migrations in flight must not be cancelled in a second.
func completionTimeout(m config.MigrationComponent, size int) time.Duration {
	return max(time.Duration(float64(size)/(1<<30)*float64(m.CompletionTimeout.Std())), m.ProgressTimeout.Std())
}

// observe records a finished migration: metrics, journal, the invariants
// it checked itself, and an audit of its guest.
func (c *Cluster) observe(rep Report, mv move, ch codec.Choice) {
	c.m.migrationObserved(rep)
	c.m.codecs.WithLabelValues(ch.Name).Inc()
	src, dst := c.hosts[mv.src].Name(), c.hosts[mv.dst].Name()
	fields := map[string]any{"id": rep.ID, "guest": mv.guest, "source": src, "destination": dst,
		"placement": mv.reason,
		"outcome":   rep.Outcome, "moved": rep.Moved(), "rounds": len(rep.Rounds), "total_seconds": rep.Total.Seconds(), "verify_seconds": rep.Verify.Seconds(),
		"downtime_seconds": rep.Downtime.Seconds(), "heartbeat_gap_seconds": rep.HeartbeatGap.Seconds(),
		"ownership_seconds": rep.Ownership.Seconds(), "codec": ch.Name, "codec_reason": ch.Reason,
		"guest_bytes_per_second": guestRate(rep), "link_estimate_bytes_per_second": rep.LinkBandwidth(),
		"raw_bytes": rep.RawBytes, "wire_bytes": rep.WireBytes, "zero_pages": rep.ZeroPages, "throttle": rep.Throttle}
	if c.owners != nil {
		fields["owner_from"], fields["owner_to"] = mv.from.String(), mv.to.String()
	}
	if rep.Err != nil {
		fields["error"] = rep.Err.Error()
	}
	c.event(EventMigration, fields)
	if rep.Invariant != "" {
		c.violation(rep.Invariant, map[string]any{"id": rep.ID, "guest": mv.guest, "first_differing_pages": rep.Mismatch,
			"source": src, "destination": dst})
	}
	c.audit([]string{mv.guest})
}

func (c *Cluster) violation(invariant string, fields map[string]any) {
	c.m.violations.WithLabelValues("migration", invariant).Inc()
	fields["component"], fields["invariant"] = "migration", invariant
	c.log.Error("migration invariant violated", "invariant", invariant, "fields", fields)
	c.event(components.EventInvariantViolation, fields)
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
	Owners     *OwnersSummary   `json:"owners,omitempty"`
}

// OwnersSummary is where the owner records live and what the audits found.
type OwnersSummary struct {
	Store                string `json:"store"`
	AuditsClean          int64  `json:"audits_clean"`
	AuditsWithViolations int64  `json:"audits_with_violations"`
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

func (c *Cluster) remember(rep Report, mv move) {
	l := &LastMigration{Guest: mv.guest, From: c.hosts[mv.src].Name(), To: c.hosts[mv.dst].Name(), Outcome: rep.Outcome,
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
		s.GuestsOn[c.hosts[h].Name()]++
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
	if c.owners != nil {
		s.Owners = &OwnersSummary{Store: c.owners.kv.Name(), AuditsClean: c.auditsClean.Load(), AuditsWithViolations: c.auditsFound.Load()}
		s.Line += fmt.Sprintf("; owners in %s, audits clean %d, with violations %d", s.Owners.Store,
			s.Owners.AuditsClean, s.Owners.AuditsWithViolations)
	}
	return s
}

// guestRate is the guest memory a migration moved per second of its
// rounds: what zero pages, deltas and compression make of the link.
func guestRate(rep Report) float64 {
	var took time.Duration
	for _, r := range rep.Rounds {
		took += r.Took
	}
	if took <= 0 {
		return 0
	}
	return float64(rep.RawBytes) / took.Seconds()
}
