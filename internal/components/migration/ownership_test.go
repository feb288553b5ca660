package migration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/raft"
	"github.com/soakd/soakd/internal/config"
)

// ownedCluster is the component with its owner records in a real 3-node
// Raft cluster whose whole history goes through the linearizability
// checker.
type ownedCluster struct {
	*testCluster
	kv  *raft.Cluster
	lin *check.Linearizability
	dir string
}

func ownedConfig(mod func(m *config.MigrationComponent)) *config.Config {
	cfg := testConfig(mod)
	cfg.Components.Migration.Ownership = "raft"
	cfg.Components.Raft.Nodes = 3
	return cfg
}

// startOwned starts Raft in dir/raft and the component on top of it;
// both stop at cleanup, the component first.
func startOwned(t *testing.T, cfg *config.Config, dir string) *ownedCluster {
	t.Helper()
	oc := &ownedCluster{dir: dir}
	oc.kv = startRaft(t, cfg, dir)
	var err error
	oc.lin, err = check.NewLinearizability(check.LinearizabilityOptions{Component: "raft", InitialAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	oc.kv.SetRecorder(oc.lin)
	oc.testCluster = oc.startComponent(t, cfg)
	return oc
}

func startRaft(t testing.TB, cfg *config.Config, dir string) *raft.Cluster {
	t.Helper()
	c, err := raft.New(components.Deps{StateDir: filepath.Join(dir, "raft"), Config: cfg, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("raft stop: %v", err)
		}
	})
	return c.(*raft.Cluster)
}

func (oc *ownedCluster) startComponent(t *testing.T, cfg *config.Config) *testCluster {
	t.Helper()
	return startClusterWith(t, components.Deps{Config: cfg, StateDir: filepath.Join(oc.dir, "migration"),
		Peer: func(name string) (components.Component, bool) { return oc.kv, name == "raft" }})
}

// record reads a guest's owner record through Raft.
func (oc *ownedCluster) record(t *testing.T, guest string) owner {
	t.Helper()
	res := oc.kv.Do(context.Background(), components.Op{Name: "get", Key: ownerKey(guest)})
	if res.Outcome != components.OutcomeOK {
		t.Fatalf("reading %s's record: %v %v", guest, res.Outcome, res.Err)
	}
	o, err := parseOwner(res.Value)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// agree fails unless every guest runs where its record and the books say.
func (oc *ownedCluster) agree(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ps, err := oc.inspect(ctx, oc.guestNames(), oc.owners)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Errorf("%s: %s %s", p.invariant, p.guest, p.detail)
	}
	for _, g := range oc.guestNames() {
		rec := oc.record(t, g)
		oc.mu.Lock()
		books := owner{Host: oc.hosts[oc.where[g]].Name(), Gen: oc.gen[g]}
		oc.mu.Unlock()
		if rec != books {
			t.Errorf("%s: record %s, books %s", g, rec, books)
		}
	}
}

func (oc *ownedCluster) linearizable(t *testing.T) {
	t.Helper()
	r := oc.lin.CheckNow()
	if r.Illegal != 0 || r.OK == 0 {
		t.Fatalf("raft history with the ownership flips: %+v", r)
	}
}

func (tc *testCluster) guestNames() []string {
	out := make([]string, tc.cfg.Guests)
	for i := range out {
		out[i] = guestName(i)
	}
	return out
}

func (tc *testCluster) flips(result string) float64 {
	return testutil.ToFloat64(tc.m.flips.WithLabelValues(result))
}

func TestOwnershipFlipsThroughRaft(t *testing.T) {
	oc := startOwned(t, ownedConfig(nil), t.TempDir())
	for i, key := range []string{"k0", "k0", "k1", "k0", "k1"} {
		if res := oc.migrate(t, key); res.Outcome != components.OutcomeOK {
			t.Fatalf("migration %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	if rec := oc.record(t, "guest-0"); rec.Gen != 3 || rec.Host != oc.hostOf("guest-0").ID {
		t.Fatalf("guest-0's record %s after 3 moves, runs on %s", rec, oc.hostOf("guest-0").ID)
	}
	if got := oc.flips(flipCommitted); got != 5 {
		t.Fatalf("committed flips %v, want 5", got)
	}
	oc.agree(t)
	oc.linearizable(t)
	if v := oc.violations(InvariantOwnership) + oc.violations(InvariantPlacement); v != 0 {
		t.Fatalf("%v violations", v)
	}
	if testutil.ToFloat64(oc.m.audits.WithLabelValues("clean")) < 5 {
		t.Fatal("the migrations were not audited")
	}
}

// A record changed by someone else makes the claim fail: the guest stays
// home, the books take the record's generation, and the next migration
// goes through.
func TestChangedRecordRefusesTheClaim(t *testing.T) {
	oc := startOwned(t, ownedConfig(nil), t.TempDir())
	home := oc.hostOf("guest-0").ID
	oc.kv.Do(context.Background(), components.Op{Name: "put", Key: ownerKey("guest-0"), Value: owner{Host: home, Gen: 7}.encode()})
	res := oc.migrate(t, "k0")
	if res.Outcome != components.OutcomeFailed || !strings.Contains(res.Err.Error(), "owner record") {
		t.Fatalf("migration under a changed record: %v %v", res.Outcome, res.Err)
	}
	if got := oc.hostOf("guest-0").ID; got != home {
		t.Fatalf("guest-0 moved to %s", got)
	}
	if oc.flips(flipRefused) != 1 {
		t.Fatal("the refused flip was not counted")
	}
	if res := oc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
		t.Fatalf("next migration: %v %v", res.Outcome, res.Err)
	}
	if rec := oc.record(t, "guest-0"); rec.Gen != 8 {
		t.Fatalf("record %s, want generation 8", rec)
	}
	oc.agree(t)
	oc.linearizable(t)
	if v := oc.violations(InvariantOwnership) + oc.violations(InvariantPlacement); v != 0 {
		t.Fatalf("%v violations", v)
	}
}

// The planted bug: the destination resumes before the record is claimed,
// and a failed claim rolls the source back as well. The audit after the
// migration catches the guest on two hosts.
func TestPlantedResumeBeforeClaimIsCaught(t *testing.T) {
	oc := startOwned(t, ownedConfig(nil), t.TempDir())
	home := oc.hostOf("guest-0").ID
	oc.kv.Do(context.Background(), components.Op{Name: "put", Key: ownerKey("guest-0"), Value: owner{Host: home, Gen: 7}.encode()})
	oc.resumeBeforeClaim.Store(true)
	oc.migrate(t, "k0")
	if oc.violations(InvariantOwnership) == 0 || oc.violations(InvariantPlacement) == 0 {
		t.Fatalf("a guest resumed before its claim was not caught: ownership %v, placement %v",
			oc.violations(InvariantOwnership), oc.violations(InvariantPlacement))
	}
	oc.evMu.Lock()
	defer oc.evMu.Unlock()
	for i, typ := range oc.types {
		if typ == components.EventInvariantViolation && strings.Contains(oc.events[i]["detail"].(string), "at once") {
			return
		}
	}
	t.Fatalf("no violation says the guest runs on two hosts: %v", oc.events)
}

// With Raft's majority down a claim cannot commit: the migration stalls
// (its guest paused) or fails and rolls back, is counted, and leaves every
// guest on exactly the host its record names once Raft is back.
func TestRaftOutageStallsOrFailsMigrations(t *testing.T) {
	oc := startOwned(t, ownedConfig(nil), t.TempDir())
	if res := oc.migrate(t, "k1"); res.Outcome != components.OutcomeOK {
		t.Fatalf("warm-up migration: %v %v", res.Outcome, res.Err)
	}
	nodes := oc.kv.NodeIDs()
	for _, n := range nodes[:2] {
		if err := oc.kv.Crash(n); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan components.Result, 1)
	go func() { done <- oc.Do(context.Background(), components.Op{Name: "migrate", Key: "k0"}) }()
	time.Sleep(3 * time.Second)
	for _, n := range nodes[:2] {
		if err := oc.kv.Restart(n); err != nil {
			t.Fatal(err)
		}
	}
	res := <-done
	stalled := testutil.CollectAndCount(oc.m.ownership) > 0
	switch res.Outcome {
	case components.OutcomeFailed:
		if oc.flips(flipUnavailable)+oc.flips(flipRefused) == 0 && !strings.Contains(res.Err.Error(), "ownership") {
			t.Fatalf("a failed migration during the outage is not an ownership failure: %v", res.Err)
		}
	case components.OutcomeOK:
		if !stalled {
			t.Fatal("a migration went through during the outage without a claim")
		}
	default:
		t.Fatalf("outcome %v %v", res.Outcome, res.Err)
	}
	t.Logf("during the outage: %v (%v); flips %v committed, %v unavailable", res.Outcome, res.Err,
		oc.flips(flipCommitted), oc.flips(flipUnavailable))
	if res := oc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
		t.Fatalf("after the outage: %v %v", res.Outcome, res.Err)
	}
	oc.agree(t)
	oc.linearizable(t)
}

// A crashed host's guests are lost with it; they come back on restart from
// their records, and meanwhile the audit finds nothing wrong.
func TestHostCrashRecreatesGuestsFromRecords(t *testing.T) {
	oc := startOwned(t, ownedConfig(func(m *config.MigrationComponent) { m.Guests = 4 }), t.TempDir())
	if res := oc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
		t.Fatalf("migration: %v %v", res.Outcome, res.Err)
	}
	h := oc.hostOf("guest-0")
	if err := oc.Crash(h.ID); err != nil {
		t.Fatal(err)
	}
	if ids := h.guestIDs(); len(ids) != 0 {
		t.Fatalf("a crashed host still holds %v", ids)
	}
	oc.agree(t)
	if res := oc.migrate(t, "k0"); res.Outcome != components.OutcomeFailed {
		t.Fatalf("migrating a guest of a crashed host: %v", res.Outcome)
	}
	if err := oc.Restart(h.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.guest("guest-0"); !ok {
		t.Fatalf("guest-0 not recreated on %s", h.ID)
	}
	oc.agree(t)
	if res := oc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
		t.Fatalf("migration after restart: %v %v", res.Outcome, res.Err)
	}
	oc.linearizable(t)
}

// A new incarnation over the same Raft places every guest where its record
// says and journals what became of a migration the last one left in
// flight.
func TestRestartFollowsTheRecords(t *testing.T) {
	cfg := ownedConfig(func(m *config.MigrationComponent) { m.Guests = 4 })
	dir := t.TempDir()
	oc := startOwned(t, cfg, dir)
	for _, k := range []string{"k0", "k1", "k2", "k0"} {
		if res := oc.migrate(t, k); res.Outcome != components.OutcomeOK {
			t.Fatalf("migration: %v %v", res.Outcome, res.Err)
		}
	}
	want := map[string]owner{}
	for _, g := range oc.guestNames() {
		want[g] = oc.record(t, g)
	}
	if err := oc.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// As a kill -9 mid-migration leaves it.
	left := intent{ID: 9, Guest: "guest-0", Source: "host-3", Destination: want["guest-0"].Host, Generation: want["guest-0"].Gen - 1}
	b, _ := json.Marshal(left)
	path := filepath.Join(dir, "migration", "inflight", "guest-0.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	next := &ownedCluster{kv: oc.kv, lin: oc.lin, dir: dir}
	next.testCluster = next.startComponent(t, cfg)
	for g, rec := range want {
		if got := next.hostOf(g).ID; got != rec.Host {
			t.Errorf("%s restarted on %s, its record names %s", g, got, rec.Host)
		}
	}
	next.agree(t)
	next.evMu.Lock()
	var found bool
	for i, typ := range next.types {
		if typ == EventRecovered {
			found = next.events[i]["outcome"] == "moved" && next.events[i]["guest"] == "guest-0"
		}
	}
	next.evMu.Unlock()
	if !found {
		t.Fatalf("no migration_recovered event for guest-0: %v", next.types)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the in-flight record was not removed")
	}
	next.linearizable(t)
}

func TestPlacementProblem(t *testing.T) {
	up := map[string]bool{"host-1": true, "host-2": true, "host-3": false}
	for _, tc := range []struct {
		named string
		on    []string
		want  string
	}{
		{"host-1", []string{"host-1"}, ""},
		{"host-3", nil, ""},
		{"host-1", nil, "runs nowhere"},
		{"host-1", []string{"host-2"}, "runs on host-2"},
		{"host-3", []string{"host-2"}, "runs on host-2"},
		{"host-1", []string{"host-1", "host-2"}, "at once"},
		{"host-9", []string{"host-1"}, "not a host"},
	} {
		got := placementProblem(tc.named, "the record", tc.on, up)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("placementProblem(%s, %v) = %q, want %q", tc.named, tc.on, got, tc.want)
		}
	}
}
