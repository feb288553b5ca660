package migration

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCluster is a started component on loopback with small guests.
type testCluster struct {
	*Cluster
	reg    *prometheus.Registry
	evMu   sync.Mutex
	events []map[string]any
	types  []string
}

func testConfig(mod func(m *config.MigrationComponent)) *config.Config {
	cfg := config.Default()
	m := &cfg.Components.Migration
	m.Hosts, m.Guests, m.GuestMemory, m.Streams = 3, 2, 8<<20, 2
	m.DirtyRate, m.HotSet, m.DirtyPattern = 0, 0.25, "sequential"
	m.XBZRLECache = 1 << 20
	m.ProgressTimeout = config.Duration(5 * time.Second)
	m.Ownership = "none" // ownership_test.go puts the records in raft
	if mod != nil {
		mod(m)
	}
	return cfg
}

func startCluster(t *testing.T, cfg *config.Config, dial components.Dialer) *testCluster {
	t.Helper()
	return startClusterWith(t, components.Deps{Config: cfg, Dial: dial})
}

// startClusterWith starts the component with deps (seed, metrics, logger
// and events filled in).
func startClusterWith(t *testing.T, deps components.Deps) *testCluster {
	t.Helper()
	tc := &testCluster{reg: prometheus.NewRegistry()}
	deps.Seed, deps.Metrics, deps.Logger, deps.Event = 42, tc.reg, slog.New(slog.DiscardHandler), tc.event
	c, err := New(deps)
	if err != nil {
		t.Fatal(err)
	}
	tc.Cluster = c.(*Cluster)
	if err := tc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tc.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return tc
}

func (tc *testCluster) event(typ string, f map[string]any) {
	tc.evMu.Lock()
	defer tc.evMu.Unlock()
	tc.types = append(tc.types, typ)
	tc.events = append(tc.events, f)
}

func (tc *testCluster) violations(inv string) float64 {
	return testutil.ToFloat64(tc.m.violations.WithLabelValues("migration", inv))
}

// hostOf is where the books say the guest runs.
func (tc *testCluster) hostOf(guest string) *Host {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.hosts[tc.where[guest]].(*localHost).Host
}

// memHash hashes a guest's memory where it runs.
func (tc *testCluster) memHash(t *testing.T, guest string) uint64 {
	t.Helper()
	g, ok := tc.hostOf(guest).guest(guest)
	if !ok {
		t.Fatalf("%s not on its host", guest)
	}
	h := make([]uint64, g.Pages())
	hashAll(g.mem, h)
	return listHash(h)
}

func (tc *testCluster) migrate(t *testing.T, key string) components.Result {
	t.Helper()
	return tc.Do(context.Background(), components.Op{Name: "migrate", Key: key})
}

func TestIdleGuestMigratesAndVerifies(t *testing.T) {
	tc := startCluster(t, testConfig(nil), nil)
	before := tc.hostOf("guest-0")
	sum := tc.memHash(t, "guest-0")
	for i := range 3 {
		if res := tc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
			t.Fatalf("migration %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	if got := tc.memHash(t, "guest-0"); got != sum {
		t.Fatal("an idle guest's memory changed across migrations")
	}
	if after := tc.hostOf("guest-0"); after == before && len(tc.hosts) == 2 {
		t.Fatal("guest did not move")
	}
	if err := tc.checkPlacement(); err != nil {
		t.Fatal(err)
	}
	for _, inv := range []string{InvariantPages, InvariantSourceFrozen, InvariantPlacement} {
		if v := tc.violations(inv); v != 0 {
			t.Fatalf("%s violations: %v", inv, v)
		}
	}
	if ok := testutil.ToFloat64(tc.m.outcomes.WithLabelValues(OutcomeOK)); ok != 3 {
		t.Fatalf("ok migrations = %v", ok)
	}
	s := tc.Summary().(Summary)
	if s.Migrations[OutcomeOK] != 3 || s.HostsUp != 3 || s.Last == nil || !strings.Contains(s.Line, "ok 3 failed 0") {
		t.Fatalf("summary %+v", s)
	}
}

func TestDirtyingGuestConvergesAndKeepsItsEdge(t *testing.T) {
	tc := startCluster(t, testConfig(func(m *config.MigrationComponent) {
		m.DirtyRate = config.Rate(32 << 20) // 8192 pages/s over a 512-page hot set
		m.Compression = "s2"
		m.XBZRLECache = 16 << 20
	}), nil)
	time.Sleep(50 * time.Millisecond) // let it dirty
	for i := range 4 {
		res := tc.migrate(t, "k1")
		if res.Outcome != components.OutcomeOK {
			t.Fatalf("migration %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	g, _ := tc.hostOf("guest-1").guest("guest-1")
	if !g.running() || g.state().Touches == 0 {
		t.Fatal("the guest does not run on its destination")
	}
	if v := tc.violations(InvariantPages) + tc.violations(InvariantSourceFrozen); v != 0 {
		t.Fatalf("%v violations", v)
	}
	if hits := testutil.ToFloat64(tc.m.cache.WithLabelValues("hit")); hits == 0 {
		t.Fatal("re-sent pages never went as deltas")
	}
}

// slowFabric caps every link at rate, so a migration of an idle 8 MiB
// guest takes about 8 MiB / rate.
func slowFabric(t *testing.T, rate float64) *fabric.Fabric {
	t.Helper()
	f := fabric.New(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = f.Close() })
	if _, err := f.Bandwidth(fabric.Isolate("migration/host-1", "migration/host-2", "migration/host-3"), rate); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFaultsMidMigrationRollBack: a partition, a reset and a destination
// crash while the pages flow each fail the migration, and the guest keeps
// running on its source with its memory unchanged.
func TestFaultsMidMigrationRollBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(c *testCluster, f *fabric.Fabric, src, dst string) error
	}{
		{"partition", func(_ *testCluster, f *fabric.Fabric, src, _ string) error {
			_, err := f.Cut(fabric.Isolate("migration/" + src))
			return err
		}},
		{"reset", func(_ *testCluster, f *fabric.Fabric, src, _ string) error {
			_, err := f.Reset(fabric.Isolate("migration/" + src))
			return err
		}},
		{"destination-crash", func(c *testCluster, _ *fabric.Fabric, _, dst string) error { return c.Crash(dst) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := slowFabric(t, 4<<20)
			c := startCluster(t, testConfig(nil), f.DialerFor("migration"))
			src := c.hostOf("guest-0")
			sum := c.memHash(t, "guest-0")
			done := make(chan components.Result, 1)
			go func() { done <- c.migrate(t, "k0") }()
			var pair [2]int
			deadline := time.Now().Add(5 * time.Second)
			for {
				c.mu.Lock()
				for _, p := range c.inFlight {
					pair = p
				}
				n := len(c.inFlight)
				c.mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no migration in flight")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // pages are flowing
			if err := tc.inject(c, f, c.hosts[pair[0]].Name(), c.hosts[pair[1]].Name()); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.Outcome != components.OutcomeFailed {
				t.Fatalf("outcome %v (%v), want failed", res.Outcome, res.Err)
			}
			if c.hostOf("guest-0") != src {
				t.Fatal("the books moved the guest")
			}
			g, ok := src.guest("guest-0")
			if !ok || !g.running() {
				t.Fatal("the guest does not run on its source")
			}
			if c.memHash(t, "guest-0") != sum {
				t.Fatal("the source guest's memory changed")
			}
			if err := c.checkPlacement(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %v", tc.name, res.Err)
		})
	}
}

// corruptingDialer flips one byte of stream 0's first page batch.
type corruptingDialer struct{ flipped atomic.Bool }

func (d *corruptingDialer) dial(ctx context.Context, from, to, addr string) (net.Conn, error) {
	c, err := components.DirectDialer(ctx, from, to, addr)
	if err != nil || d.flipped.Load() {
		return c, err
	}
	return &flipConn{Conn: c, d: d}, nil
}

type flipConn struct {
	net.Conn
	d    *corruptingDialer
	sent int
}

// flipAt lands in the first page of the first batch: past the hello
// frame (a few hundred bytes), the batch header and the entry header.
const flipAt = 2000

func (c *flipConn) Write(b []byte) (int, error) {
	if c.sent <= flipAt && c.sent+len(b) > flipAt && c.d.flipped.CompareAndSwap(false, true) {
		b = append([]byte(nil), b...)
		b[flipAt-c.sent] ^= 0x40
	}
	c.sent += len(b)
	return c.Conn.Write(b)
}

// TestCorruptedFrameFailsVerification: a byte flipped on the wire (in a raw
// page, or in a compressed batch) is caught before the guest resumes: the
// migration fails, the violation is counted, and the guest stays home.
func TestCorruptedFrameFailsVerification(t *testing.T) {
	for _, codec := range []string{"none", "s2", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			d := &corruptingDialer{}
			c := startCluster(t, testConfig(func(m *config.MigrationComponent) {
				m.Content = config.ContentMix{Random: 1}
				m.Compression = codec
				m.Streams = 1
			}), d.dial)
			src := c.hostOf("guest-0")
			res := c.migrate(t, "k0")
			if res.Outcome != components.OutcomeFailed || !d.flipped.Load() {
				t.Fatalf("outcome %v (%v), flipped %v", res.Outcome, res.Err, d.flipped.Load())
			}
			if v := c.violations(InvariantPages); v != 1 {
				t.Fatalf("%s violations = %v, want 1", InvariantPages, v)
			}
			if c.hostOf("guest-0") != src {
				t.Fatal("the guest moved")
			}
			t.Logf("%v", res.Err)
			// The next migration, on a clean wire, succeeds.
			if res := c.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
				t.Fatalf("clean retry: %v %v", res.Outcome, res.Err)
			}
		})
	}
}

// TestPlantedDirtyTrackingBugIsCaught: a guest whose writes sometimes miss
// the dirty bitmap migrates pages older than the source's; the frozen
// source copy, hashed after the guest resumed, shows it.
func TestPlantedDirtyTrackingBugIsCaught(t *testing.T) {
	c := startCluster(t, testConfig(func(m *config.MigrationComponent) {
		m.DirtyRate = config.Rate(16 << 20)
		m.DirtyPattern = "random" // no edge check: the frozen copy must catch it
	}), nil)
	g, _ := c.hostOf("guest-1").guest("guest-1")
	g.mu.Lock()
	g.loseDirtyEvery = 7
	g.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 5 && c.violations(InvariantSourceFrozen) == 0; i++ {
		_ = c.migrate(t, "k1")
		if g, ok := c.hostOf("guest-1").guest("guest-1"); ok {
			g.mu.Lock()
			g.loseDirtyEvery = 7 // the bug moves with the guest
			g.mu.Unlock()
		}
	}
	if c.violations(InvariantSourceFrozen) == 0 {
		t.Fatal("five migrations of a guest losing dirty bits, none caught")
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	for i, typ := range c.types {
		if typ == components.EventInvariantViolation {
			t.Logf("caught: %v", c.events[i])
			return
		}
	}
	t.Fatal("no invariant_violation journaled")
}

// TestCorruptedDeltaFailsVerification: a delta with a flipped byte decodes
// into the wrong page (or not at all); either way the destination's hashes
// differ, the guest stays home, and the violation is counted.
func TestCorruptedDeltaFailsVerification(t *testing.T) {
	c := startCluster(t, testConfig(func(m *config.MigrationComponent) {
		m.DirtyRate = config.Rate(64 << 20)
		m.DirtyPattern = "random"
		m.XBZRLECache = 16 << 20
		m.DowntimeLimit = config.Duration(time.Millisecond) // several rounds: re-sent pages go as deltas
		m.ProgressTimeout = config.Duration(time.Second)
		m.OnTimeout = "force"
	}), nil)
	c.corruptDeltas.Store(true)
	time.Sleep(20 * time.Millisecond)
	src := c.hostOf("guest-1")
	res := c.migrate(t, "k1")
	if res.Outcome != components.OutcomeFailed || c.violations(InvariantPages) != 1 {
		t.Fatalf("outcome %v (%v), %v violations", res.Outcome, res.Err, c.violations(InvariantPages))
	}
	if hits := testutil.ToFloat64(c.m.cache.WithLabelValues("hit")); hits == 0 {
		t.Fatal("no delta was sent: the test proves nothing")
	}
	if c.hostOf("guest-1") != src {
		t.Fatal("the guest moved")
	}
	t.Logf("%v", res.Err)
}

// TestPlacementRulesHold: an anti-affinity pair never shares a host, and
// every finished migration journals why its destination was chosen.
func TestPlacementRulesHold(t *testing.T) {
	c := startCluster(t, testConfig(func(m *config.MigrationComponent) {
		m.Hosts, m.Guests = 4, 3
		m.Placement.AntiAffinity = [][]string{{"guest-0", "guest-1"}}
	}), nil)
	for i := range 8 {
		key := []string{"k0", "k1"}[i%2]
		if res := c.migrate(t, key); res.Outcome != components.OutcomeOK {
			t.Fatalf("migration %d: %v %v", i, res.Outcome, res.Err)
		}
		if c.hostOf("guest-0") == c.hostOf("guest-1") {
			t.Fatalf("after migration %d guest-0 and guest-1 share %s", i, c.hostOf("guest-0").ID)
		}
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	n := 0
	for i, typ := range c.types {
		if typ == EventMigration {
			if r, _ := c.events[i]["placement"].(string); !strings.Contains(r, "balance") {
				t.Fatalf("migration_finished without a placement reason: %v", c.events[i])
			}
			n++
		}
	}
	if n != 8 {
		t.Fatalf("%d migration_finished events, want 8", n)
	}
}

// checkPlacement is the books half of an audit, for tests: nil when every
// guest not migrating runs where the books say.
func (c *Cluster) checkPlacement() error {
	names := make([]string, c.cfg.Guests)
	for i := range names {
		names[i] = guestName(i)
	}
	ps, err := c.inspect(context.Background(), names, nil)
	if err != nil {
		return err
	}
	if len(ps) > 0 {
		return fmt.Errorf("%s %s", ps[0].guest, ps[0].detail)
	}
	return nil
}
