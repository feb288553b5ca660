package migration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/migration/codec"
	"github.com/soakd/soakd/internal/components/migration/placement"
	"github.com/soakd/soakd/internal/config"
)

// Spec registers the migration component: enabled by
// components.migration, driven by load.migration at its interval.
func Spec() components.Spec {
	return components.Spec{
		Name:    "migration",
		Factory: New,
		Enabled: func(c *config.Config) bool { return c.Components.Migration.Enabled },
		Load: func(c *config.Config) (config.RateLoad, bool) {
			l := c.Load.Migration
			return config.RateLoad{Rate: 1 / l.Interval.Std().Seconds(), Mix: map[string]float64{"migrate": 1},
				Keys: c.Components.Migration.Guests, Arrivals: "uniform", KeyDist: "uniform", MaxInFlight: l.MaxInFlight}, true
		},
		OpTimeout: opTimeout,
		Links: func(c *config.Config) (components.LinkProfile, bool) {
			m := c.Components.Migration
			return components.LinkProfile{Bandwidth: m.Internet.Bandwidth.PerSecond(), Delay: m.Internet.RTT.Std()},
				m.Mode == "internet"
		},
		Targets: []components.Target{{Role: components.RoleLink, Selector: "link"},
			{Role: components.RoleFollower, Selector: "host"}},
	}
}

// opTimeout bounds one migrate operation: its completion timeout, which
// the engine enforces itself, plus the switch-over's stalls.
func opTimeout(c *config.Config) time.Duration { return opTimeoutOf(c.Components.Migration) }

func opTimeoutOf(m config.MigrationComponent) time.Duration {
	return completionTimeout(m, int(m.GuestMemory)) + 3*stallTimeout(m)
}

func stallTimeout(m config.MigrationComponent) time.Duration {
	return max(m.ProgressTimeout.Std(), 5*time.Second)
}

// Cluster is the migration component: hosts, the guests spread over them,
// and migrations between them over the component's Dialer.
type Cluster struct {
	cfg      config.MigrationComponent
	seed     uint64
	clock    clockwork.Clock
	log      *slog.Logger
	dial     components.Dialer
	event    func(string, map[string]any)
	m        *metrics
	stateDir string
	// profiles are the codecs measured on the guests' memory at start,
	// when the codec is chosen per migration (compression auto).
	profiles []codec.Profile
	// owners holds the owner records (nil: ownership none, the books are
	// the only record).
	owners *ownerStore

	hosts  []hostNode
	nextID atomic.Uint64
	// Test knobs (see Params).
	corruptDeltas     atomic.Bool
	resumeBeforeClaim atomic.Bool

	life      context.Context // ends at Stop
	endLife   context.CancelFunc
	auditWake chan struct{}
	// Audits run, for the status line.
	auditsClean, auditsFound atomic.Int64
	wg                       sync.WaitGroup

	mu       sync.Mutex
	where    map[string]int    // guest → host index (the books)
	gen      map[string]uint64 // guest → its owner record's generation
	epoch    map[string]uint64 // guest → migrations begun and ended, for audits
	busy     map[string]bool
	inFlight map[uint64][2]int           // migration id → source, destination
	reserved map[uint64]func(moved bool) // migration id → its room on the destination
	links    map[[2]int]float64          // bandwidth history per host pair
	capacity map[[2]int]float64          // link capacity estimates per host pair, for the codec choice
	counts   map[string]int64            // finished migrations by outcome
	last     *LastMigration
	pool     *placement.Pool // where guests run, for choosing destinations
	sizes    map[string]int  // guest → its size in bytes

	// Hosts as processes (procs.go): soakd's executable, the fabric's proxy
	// for a link, and the client of their APIs.
	bin      string
	linkAddr func(from, to, addr string) (string, error)
	http     *http.Client
}

// New builds the component from the config; Start brings it up.
func New(deps components.Deps) (components.Component, error) {
	if deps.Config == nil {
		return nil, errors.New("migration: no config")
	}
	m := deps.Config.Components.Migration
	if m.Hosts < 2 || m.Guests < 1 {
		return nil, fmt.Errorf("migration: need at least 2 hosts and 1 guest, have %d and %d", m.Hosts, m.Guests)
	}
	c := &Cluster{cfg: m, seed: deps.Seed, clock: deps.Clock, log: deps.Logger, dial: deps.Dial, event: deps.Event, linkAddr: deps.LinkAddr,
		stateDir: deps.StateDir, where: map[string]int{}, gen: map[string]uint64{}, epoch: map[string]uint64{},
		busy: map[string]bool{}, inFlight: map[uint64][2]int{},
		reserved: map[uint64]func(bool){}, links: map[[2]int]float64{}, capacity: map[[2]int]float64{},
		counts: map[string]int64{}, sizes: map[string]int{}}
	if c.clock == nil {
		c.clock = clockwork.NewRealClock()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.dial == nil {
		c.dial = components.DirectDialer
	}
	if c.event == nil {
		c.event = func(string, map[string]any) {}
	}
	if store := m.Ownership; store != "" && store != "none" {
		var kv components.Component
		ok := deps.Peer != nil
		if ok {
			kv, ok = deps.Peer(store)
		}
		if !ok {
			return nil, fmt.Errorf("migration: ownership store %q is not built before migration (set components.migration.ownership: none to keep records in memory)", store)
		}
		var err error
		if c.owners, err = newOwnerStore(kv); err != nil {
			return nil, err
		}
	}
	var err error
	if c.m, err = newMetrics(deps.Metrics); err != nil {
		return nil, err
	}
	c.m.limit.Set(m.DowntimeLimit.Std().Seconds())
	if deps.Metrics != nil {
		if err := deps.Metrics.Register(newFleetCollector(c)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) Name() string  { return "migration" }
func (c *Cluster) Ops() []string { return []string{"migrate"} }

// Start creates the hosts, reads each guest's owner record (writing the
// first ones on a new run), recreates every guest on the host its record
// names, journals what became of migrations a killed incarnation left in
// flight, and starts the guests and the ownership auditor.
func (c *Cluster) Start(ctx context.Context) error {
	stall := stallTimeout(c.cfg)
	hosts := make([]hostNode, c.cfg.Hosts)
	if c.cfg.HostMode == config.ModeProcesses {
		var err error
		if hosts, err = c.newProcHosts(); err != nil {
			return err
		}
	} else {
		for i := range hosts {
			hosts[i] = &localHost{Host: newHost("host-"+strconv.Itoa(i+1), c.clock, c.log.With("host", i+1), stall), dial: c.dial}
		}
	}
	c.mu.Lock()
	c.hosts = hosts // under mu: the fleet collector may scrape meanwhile
	c.mu.Unlock()
	c.life, c.endLife = context.WithCancel(context.Background())
	c.auditWake = make(chan struct{}, 1)
	fail := func(err error) error {
		c.endLife()
		_ = c.closeHosts()
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	owners, err := c.loadOwners(rctx)
	if err != nil {
		return fail(err)
	}
	for i := range c.cfg.Guests {
		id := guestName(i)
		o := owners[id]
		h := c.hostIndex(o.Host)
		spec := c.guestSpec(i, o.Gen)
		size, err := spec.bytes()
		if err != nil {
			return fail(err)
		}
		if err := c.hosts[h].installGuest(spec); err != nil {
			return fail(err)
		}
		c.mu.Lock()
		c.where[id], c.gen[id], c.sizes[id] = h, o.Gen, size
		c.mu.Unlock()
	}
	c.recoverIntents(owners)
	if err := c.measureCodecs(); err != nil {
		return fail(err)
	}
	if err := c.buildPool(); err != nil {
		return fail(err)
	}
	for _, h := range c.hosts {
		if err := h.start(); err != nil {
			return fail(err)
		}
	}
	if c.owners != nil {
		c.wg.Go(c.auditLoop)
		c.auditSoon() // every guest against its record, as this incarnation starts
	}
	c.log.Info("migration hosts up", "hosts", len(c.hosts), "guests", c.cfg.Guests, "guest_memory", int64(c.cfg.GuestMemory),
		"ownership", c.cfg.Ownership, "host_mode", cmp.Or(c.cfg.HostMode, config.ModeInProcess))
	return nil
}

// startTimeout bounds reading and writing the owner records at start.
const startTimeout = time.Minute

func guestName(i int) string { return "guest-" + strconv.Itoa(i) }

// guestIndex is N of guest-N (-1 for another name).
func guestIndex(id string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "guest-"))
	if err != nil || !strings.HasPrefix(id, "guest-") {
		return -1
	}
	return n
}

// guestSpec is guest i's memory for its owner generation: a guest
// recreated after a host crash or a restart of soakd starts from content
// derived from the seed and its generation (its memory before was lost
// with the host), so a replay of the run recreates the same bytes.
func (c *Cluster) guestSpec(i int, gen uint64) GuestSpec {
	return GuestSpec{ID: guestName(i), Size: int(c.cfg.GuestMemory), Image: c.cfg.GuestImage,
		Seed:     c.seed + uint64(i)*0x9e3779b97f4a7c15 + gen*0xbf58476d1ce4e5b9,
		Workload: Workload{Rate: c.cfg.DirtyRate.PerSecond(), HotSet: c.cfg.HotSet.Fraction(), Pattern: c.cfg.DirtyPattern},
		Content:  Content{Zero: c.cfg.Content.Zero.Fraction(), Text: c.cfg.Content.Text.Fraction(), Random: c.cfg.Content.Random.Fraction()}}
}

// guestSize is a guest's size in bytes.
func (c *Cluster) guestSize(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sizes[id]
}

// fleet is the hosts, the guests the books put on each, and the
// migrations in flight.
func (c *Cluster) fleet() ([]hostNode, []int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	guests := make([]int, len(c.hosts))
	for _, h := range c.where {
		guests[h]++
	}
	return c.hosts, guests, len(c.inFlight)
}

// hostIndex is the index of host id (-1 if none).
func (c *Cluster) hostIndex(id string) int {
	for i, h := range c.hosts {
		if h.Name() == id {
			return i
		}
	}
	return -1
}

// buildPool sets up placement over the hosts and guests as they start.
func (c *Cluster) buildPool() error {
	hosts := make([]placement.Host, len(c.hosts))
	for i, h := range c.hosts {
		hosts[i] = placement.Host{ID: h.Name(), Capacity: int64(c.cfg.Placement.HostMemory), Up: true, MaxIncoming: maxIncoming}
	}
	guests := make([]placement.Guest, 0, len(c.where))
	for i := range c.cfg.Guests {
		id := guestName(i)
		guests = append(guests, placement.Guest{ID: id, Size: int64(c.sizes[id]), Host: c.where[id]})
	}
	pl := c.cfg.Placement
	var err error
	c.pool, err = placement.NewPool(hosts, guests, placement.Rules{Affinity: pl.Affinity, AntiAffinity: pl.AntiAffinity},
		placement.Weights{Balance: pl.Balance, LinkCost: pl.LinkCost, Affinity: pl.AffinityWeight})
	return err
}

// Stop stops the auditor and every host and frees the guests' memory.
func (c *Cluster) Stop(context.Context) error {
	if c.endLife != nil {
		c.endLife()
	}
	c.wg.Wait()
	return c.closeHosts()
}

func (c *Cluster) closeHosts() error {
	var errs []error
	for _, h := range c.hosts {
		errs = append(errs, h.close())
	}
	return errors.Join(errs...)
}

// Health: migrations need two hosts up.
func (c *Cluster) Health() components.Health {
	var down []string
	for _, h := range c.hosts {
		if !h.Up() {
			down = append(down, h.Name())
		}
	}
	if len(c.hosts)-len(down) < 2 {
		return components.Health{Detail: fmt.Sprintf("%d of %d hosts up (down: %s)", len(c.hosts)-len(down), len(c.hosts), strings.Join(down, ", "))}
	}
	return components.Health{Healthy: true}
}

// NodeIDs are the hosts.
func (c *Cluster) NodeIDs() []string {
	out := make([]string, len(c.hosts))
	for i, h := range c.hosts {
		out[i] = h.Name()
	}
	return out
}

func (c *Cluster) host(id string) (hostNode, error) {
	for _, h := range c.hosts {
		if h.Name() == id {
			return h, nil
		}
	}
	return nil, fmt.Errorf("migration: %w: %s", components.ErrNoSuchNode, id)
}

// Crash takes a host down: its migrations fail and roll back, and its
// guests are lost with it; their owner records still name it.
func (c *Cluster) Crash(id string) error {
	h, err := c.host(id)
	if err != nil {
		return err
	}
	h.stop()
	c.setUp(id, false)
	if _, ok := h.(*procHost); ok {
		c.event("migration_host_crashed", map[string]any{"host": id, "signal": "SIGKILL"})
	}
	return nil
}

// setUp tells placement a host went down or came back.
func (c *Cluster) setUp(id string, up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range c.hosts {
		if h.Name() == id && c.pool != nil {
			c.pool.SetUp(i, up)
		}
	}
}

// Restart brings a host back on a new port with the guests its owner
// records name, recreated (see newGuest). It first waits, for a bounded
// time, for migrations to or from the host to settle their records.
func (c *Cluster) Restart(id string) error {
	h, err := c.host(id)
	if err != nil {
		return err
	}
	if h.Up() {
		return nil
	}
	hi := c.hostIndex(id)
	c.awaitMigrations(hi, opTimeoutOf(c.cfg))
	ctx, cancel := context.WithTimeout(c.life, restartTimeout)
	owners, err := c.readOwners(ctx)
	cancel()
	if err != nil {
		// The store is out of reach: the books mirror every committed flip.
		c.log.Warn("restarting a host from the books: owner records unreadable", "host", id, "err", err)
		owners = c.booksOwners()
	}
	for i := range c.cfg.Guests {
		gid := guestName(i)
		o := owners[gid]
		if o.Host != id {
			continue
		}
		if err := h.installGuest(c.guestSpec(i, o.Gen)); err != nil {
			return err
		}
		c.mu.Lock()
		c.where[gid], c.gen[gid] = hi, o.Gen
		c.pool.Move(gid, hi)
		c.mu.Unlock()
	}
	if err := h.start(); err != nil {
		return err
	}
	c.setUp(id, true)
	if _, ok := h.(*procHost); ok {
		c.event("migration_host_restarted", map[string]any{"host": id})
	}
	c.auditSoon()
	return nil
}

// restartTimeout bounds reading the owner records at a host's restart.
const restartTimeout = 10 * time.Second

// awaitMigrations waits until no migration in flight has host h at either
// end, or for d.
func (c *Cluster) awaitMigrations(h int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		busy := false
		for _, pair := range c.inFlight {
			busy = busy || pair[0] == h || pair[1] == h
		}
		c.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Resolve maps a selector to hosts: all, host (one, by pick), host-N,
// source and destination (of a migration in flight, by pick; any host when
// none is), and link (a migration's source: a fault on its links cuts the
// migration).
func (c *Cluster) Resolve(sel string, pick uint64) ([]string, error) {
	switch sel {
	case "all":
		return c.NodeIDs(), nil
	case "host":
		return []string{c.hosts[pick%uint64(len(c.hosts))].Name()}, nil
	case "link", "source", "destination":
		c.mu.Lock()
		ids := make([]uint64, 0, len(c.inFlight))
		for id := range c.inFlight {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var pair [2]int
		found := len(ids) > 0
		if found {
			pair = c.inFlight[ids[pick%uint64(len(ids))]]
		}
		c.mu.Unlock()
		if !found {
			return []string{c.hosts[pick%uint64(len(c.hosts))].Name()}, nil
		}
		if sel == "destination" {
			return []string{c.hosts[pair[1]].Name()}, nil
		}
		return []string{c.hosts[pair[0]].Name()}, nil
	}
	if _, err := c.host(sel); err != nil {
		return nil, fmt.Errorf("migration: unknown target %q (want all, host, host-N, link, source or destination)", sel)
	}
	return []string{sel}, nil
}
