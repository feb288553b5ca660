package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fleetConfig runs Raft and a small migration fleet whose owner records
// live in Raft, with migrations every half second.
func fleetConfig(t *testing.T, faults string) string {
	t.Helper()
	cfg := string(mustRead(t, testConfig(t, `
load:
  raft: {ramp_up: 0s, rate: 100}
  migration: {interval: 400ms, max_in_flight: 2}
`+faults)))
	cfg = strings.Replace(cfg, "raft: {enabled: false}", "raft: {enabled: true, nodes: 3}", 1)
	cfg = strings.Replace(cfg, "migration: {enabled: false}",
		"migration: {enabled: true, hosts: 3, guests: 6, guest_memory: 16MiB, progress_timeout: 5s, ownership: raft}", 1)
	return writeTemp(t, cfg)
}

// fleetClean fails on any invariant violation or illegal Raft window.
func fleetClean(t *testing.T, d *proc) {
	t.Helper()
	for k, v := range d.scrape("soakd_invariant_violations_total") {
		if v != 0 {
			t.Errorf("%s = %v\n%s", k, v, d.stderr)
		}
	}
	if bad := d.scrape("soakd_checks_total")[`soakd_checks_total{checker="linearizability",component="raft",result="illegal"}`]; bad != 0 {
		t.Errorf("linearizability: %v illegal windows", bad)
	}
}

// TestFleetOwnershipEndToEnd: with the default pairing of Raft and
// migration, every ownership flip goes through Raft and its checker; a
// Raft leader partition and a migration host crash during migrations, and
// then a kill -9 of soakd, leave every guest on exactly the host its Raft
// record names (the audits after each fault and at start find nothing).
func TestFleetOwnershipEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("about a minute of real time")
	}
	cfg := fleetConfig(t, `
faults:
  blast_radius: {raft: 1, migration: 1}
  pause_when_unhealthy: false
  timeline:
    - {at: 3s, duration: 6s, kind: partition, target: raft/leader}
    - {at: 11s, duration: 5s, kind: crash, target: migration/host}
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	waitEvent(t, state, "fault_reverted", 2, 60*time.Second)
	time.Sleep(2 * time.Second) // migrations after the host is back
	flips := d.scrape("soakd_migration_ownership_flips_total")
	audits := d.scrape("soakd_migration_ownership_audits_total")
	t.Logf("flips %v; audits %v", flips, audits)
	if flips[`soakd_migration_ownership_flips_total{result="committed"}`] < 5 {
		t.Fatalf("too few ownership flips committed: %v", flips)
	}
	// One audit after each injection and revert, besides the migrations'.
	if audits[`soakd_migration_ownership_audits_total{result="clean"}`] < 4 {
		t.Fatalf("too few clean audits: %v", audits)
	}
	fleetClean(t, d)
	t.Logf("migrations: %v", d.scrape("soakd_migration_migrations_total"))

	// kill -9 with a migration in flight (its record in the state dir),
	// then resume the same run.
	inflight := filepath.Join(state, "components", "migration", "inflight")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if es, _ := os.ReadDir(inflight); len(es) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(10 * time.Second)
	// Records written whole; a temp file of a write the kill cut short is
	// not one (nothing had been sent yet).
	left, _ := filepath.Glob(filepath.Join(inflight, "guest-*.json"))
	if len(left) == 0 {
		t.Log("no migration was in flight at the kill")
	}
	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	deadline = time.Now().Add(30 * time.Second)
	for {
		a := d2.scrape("soakd_migration_ownership_audits_total")
		f := d2.scrape("soakd_migration_ownership_flips_total")
		if a[`soakd_migration_ownership_audits_total{result="clean"}`] >= 1 && f[`soakd_migration_ownership_flips_total{result="committed"}`] >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after kill -9: audits %v, flips %v\n%s", a, f, d2.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fleetClean(t, d2)
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	if code := d2.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d2.stderr)
	}
	evs, types := journalTypes(t, state)
	if strings.Contains(types, "invariant_violation") {
		t.Fatalf("invariant violated: %s", types)
	}
	var recovered []string
	for _, e := range evs {
		if e.Type == "migration_recovered" {
			recovered = append(recovered, e.Fields["guest"].(string)+" "+e.Fields["outcome"].(string))
		}
	}
	t.Logf("migrations the killed incarnation left in flight: %v", recovered)
	if len(recovered) != len(left) {
		t.Fatalf("%d migrations left in flight, %d journaled as recovered: %v", len(left), len(recovered), recovered)
	}
	if es, _ := os.ReadDir(inflight); len(es) != 0 {
		t.Fatalf("in-flight records left after the resumed run stopped: %v", es)
	}
}
