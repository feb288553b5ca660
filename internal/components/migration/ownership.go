package migration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/fsutil"
)

// EventRecovered is a migration a killed incarnation left in flight, and
// where its guest's owner record says it runs now.
const EventRecovered = "migration_recovered"

// Audits of the guests against the books and the owner records.
const (
	// auditInterval: the auditor also runs without a fault to wake it.
	auditInterval = time.Minute
	// auditTimeout bounds one audit's reads; a store out of reach skips it.
	auditTimeout = 10 * time.Second
)

// loadOwners reads every guest's owner record at start, writing the first
// records of a new run (guest i on host i mod hosts, generation 0) and
// moving a record that names a host this config no longer has.
func (c *Cluster) loadOwners(ctx context.Context) (map[string]owner, error) {
	out := make(map[string]owner, c.cfg.Guests)
	for i := range c.cfg.Guests {
		id := guestName(i)
		initial := owner{Host: c.hosts[i%len(c.hosts)].Name()}
		if c.owners == nil {
			out[id] = initial
			continue
		}
		o, found, err := c.owners.read(ctx, i, id)
		if err != nil {
			return nil, fmt.Errorf("migration: reading %s's owner record: %w", id, err)
		}
		switch {
		case !found:
			if err := c.owners.create(ctx, i, id, initial); err != nil {
				return nil, fmt.Errorf("migration: writing %s's first owner record: %w", id, err)
			}
			o = initial
		case c.hostIndex(o.Host) < 0:
			to := owner{Host: initial.Host, Gen: o.Gen + 1}
			rec, _, err := c.owners.flip(ctx, i, id, o, to)
			if err != nil || rec != to {
				return nil, fmt.Errorf("migration: %s's owner record names %s, not a host of this config, and could not be moved (record %s): %v", id, o.Host, rec, err)
			}
			c.log.Warn("owner record named a host this config does not have; moved", "guest", id, "from", o, "to", to)
			o = to
		}
		out[id] = o
	}
	return out, nil
}

// readOwners reads every guest's owner record; a guest with none keeps
// its books entry.
func (c *Cluster) readOwners(ctx context.Context) (map[string]owner, error) {
	out := c.booksOwners()
	if c.owners == nil {
		return out, nil
	}
	for i := range c.cfg.Guests {
		id := guestName(i)
		o, found, err := c.owners.read(ctx, i, id)
		if err != nil {
			return nil, err
		}
		if found {
			out[id] = o
		}
	}
	return out, nil
}

// booksOwners is what the books say of every guest.
func (c *Cluster) booksOwners() map[string]owner {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]owner, len(c.where))
	for g, h := range c.where {
		out[g] = owner{Host: c.hosts[h].Name(), Gen: c.gen[g]}
	}
	return out
}

// intent is a migration in flight, kept in the state dir until it ends so
// that the next incarnation can say what became of it after a kill -9.
type intent struct {
	ID          uint64    `json:"id"`
	Guest       string    `json:"guest"`
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	Generation  uint64    `json:"generation"`
	Started     time.Time `json:"started"`
}

func (c *Cluster) intentPath(guest string) string {
	return filepath.Join(c.stateDir, "inflight", guest+".json")
}

// writeIntent records a migration before it sends anything (no state dir:
// nothing to record).
func (c *Cluster) writeIntent(in intent) {
	if c.stateDir == "" {
		return
	}
	b, _ := json.Marshal(in)
	path := c.intentPath(in.Guest)
	err := os.MkdirAll(filepath.Dir(path), 0o750)
	if err == nil {
		err = fsutil.WriteBytes(path, 0o640, b)
	}
	if err != nil {
		c.log.Warn("recording a migration in flight", "guest", in.Guest, "err", err)
	}
}

func (c *Cluster) removeIntent(guest string) {
	if c.stateDir == "" {
		return
	}
	if err := os.Remove(c.intentPath(guest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("removing a finished migration's record", "guest", guest, "err", err)
	}
}

// recoverIntents journals, for each migration an earlier incarnation left
// in flight, where its guest runs now (moved, stayed, or elsewhere), and
// forgets it. Nothing else is left half done: the destination's copy died
// with that process, and the guest runs where its record says.
func (c *Cluster) recoverIntents(owners map[string]owner) {
	if c.stateDir == "" {
		return
	}
	dir := filepath.Join(c.stateDir, "inflight")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			// A record whose atomic write a kill -9 cut short (the
			// writer's temp file): that migration had not sent anything.
			_ = os.Remove(path)
			continue
		}
		b, err := os.ReadFile(path)
		var in intent
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		if err != nil || in.Guest == "" {
			c.log.Warn("unreadable record of a migration in flight; dropped", "file", path, "err", err)
			_ = os.Remove(path)
			continue
		}
		o, ok := owners[in.Guest]
		outcome := "elsewhere"
		switch {
		case !ok:
			outcome = "guest gone"
		case o.Host == in.Destination:
			outcome = "moved"
		case o.Host == in.Source:
			outcome = "stayed"
		}
		c.event(EventRecovered, map[string]any{"id": in.ID, "guest": in.Guest, "source": in.Source,
			"destination": in.Destination, "started": in.Started, "outcome": outcome, "owner": o.String()})
		c.log.Info("migration left in flight by the previous incarnation", "guest", in.Guest, "source", in.Source,
			"destination", in.Destination, "outcome", outcome, "owner", o.String())
		_ = os.Remove(path)
	}
}

// FaultInjected and FaultReverted (faults.Observer) wake the auditor: the
// guests are checked against their records after every fault.
func (c *Cluster) FaultInjected(string, string) { c.auditSoon() }
func (c *Cluster) FaultReverted(string, string) { c.auditSoon() }

func (c *Cluster) auditSoon() {
	if c.auditWake == nil {
		return
	}
	select {
	case c.auditWake <- struct{}{}:
	default:
	}
}

func (c *Cluster) auditLoop() {
	t := c.clock.NewTicker(auditInterval)
	defer t.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.auditWake:
		case <-t.Chan():
		}
		c.auditAll()
	}
}

func (c *Cluster) auditAll() {
	names := make([]string, c.cfg.Guests)
	for i := range names {
		names[i] = guestName(i)
	}
	c.audit(names)
}

// problem is one guest found breaking an invariant.
type problem struct {
	invariant, guest, detail string
}

// audit checks guests against the books (InvariantPlacement) and their
// owner records (InvariantOwnership), and reports what it finds.
func (c *Cluster) audit(guests []string) {
	ctx, cancel := context.WithTimeout(c.life, auditTimeout)
	defer cancel()
	ps, err := c.inspect(ctx, guests, c.owners)
	if err != nil {
		c.m.audits.WithLabelValues("skipped").Inc()
		c.log.Debug("ownership audit skipped", "err", err)
		return
	}
	if len(ps) == 0 {
		c.m.audits.WithLabelValues("clean").Inc()
		c.auditsClean.Add(1)
		return
	}
	c.m.audits.WithLabelValues("violation").Inc()
	c.auditsFound.Add(1)
	for _, p := range ps {
		c.violation(p.invariant, map[string]any{"guest": p.guest, "detail": p.detail})
	}
}

// inspect finds the problems of guests that no migration touched while it
// looked (records from store; nil: the books only): it snapshots their epochs, reads their records, then what each
// host runs, and drops a guest whose epoch moved meanwhile.
func (c *Cluster) inspect(ctx context.Context, guests []string, store *ownerStore) ([]problem, error) {
	c.mu.Lock()
	epochs := make(map[string]uint64, len(guests))
	for _, g := range guests {
		if !c.busy[g] {
			epochs[g] = c.epoch[g]
		}
	}
	c.mu.Unlock()
	names := make([]string, 0, len(epochs))
	for g := range epochs {
		names = append(names, g)
	}
	slices.Sort(names)
	records := map[string]owner{}
	if store != nil {
		for _, g := range names {
			o, found, err := store.read(ctx, guestIndex(g), g)
			if err != nil {
				return nil, err
			}
			if found {
				records[g] = o
			}
		}
	}
	up := map[string]bool{}
	on := map[string][]string{}
	for _, h := range c.hosts {
		isUp, ids := h.snapshot()
		up[h.Name()] = isUp
		for _, g := range ids {
			on[g] = append(on[g], h.Name())
		}
	}
	books := map[string]string{}
	c.mu.Lock()
	for _, g := range names {
		if c.busy[g] || c.epoch[g] != epochs[g] {
			continue
		}
		books[g] = c.hosts[c.where[g]].Name()
	}
	c.mu.Unlock()
	var out []problem
	for _, g := range names {
		b, ok := books[g]
		if !ok {
			continue
		}
		if d := placementProblem(b, "the books", on[g], up); d != "" {
			out = append(out, problem{InvariantPlacement, g, d})
		}
		if store == nil {
			continue
		}
		rec, found := records[g]
		if !found {
			out = append(out, problem{InvariantOwnership, g, "no owner record"})
		} else if d := placementProblem(rec.Host, "its owner record ("+rec.String()+")", on[g], up); d != "" {
			out = append(out, problem{InvariantOwnership, g, d})
		}
	}
	return out, nil
}

// placementProblem says what is wrong with a guest that runs on the hosts
// in on when source names host named: it must run on named alone while
// named is up, and nowhere while it is down. "" when nothing is.
func placementProblem(named, source string, on []string, up map[string]bool) string {
	isUp, known := up[named]
	switch {
	case len(on) > 1:
		return fmt.Sprintf("runs on %s at once; %s names %s", strings.Join(on, " and "), source, named)
	case !known:
		return fmt.Sprintf("%s names %s, which is not a host", source, named)
	case isUp && len(on) == 0:
		return fmt.Sprintf("runs nowhere; %s names %s, which is up", source, named)
	case len(on) == 1 && on[0] != named:
		return fmt.Sprintf("runs on %s; %s names %s", on[0], source, named)
	}
	return ""
}
