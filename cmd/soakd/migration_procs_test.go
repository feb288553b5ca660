package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// migrationProcessesConfig is a run with the migration hosts as processes,
// their owner records in Raft (in process).
func migrationProcessesConfig(t *testing.T, migration, faults string) string {
	t.Helper()
	cfg := string(mustRead(t, testConfig(t, `
load:
  raft: {ramp_up: 0s, rate: 50}
  migration: {interval: 2s}
faults:
  pause_when_unhealthy: false
`+faults)))
	return writeTemp(t, strings.NewReplacer(
		"raft: {enabled: false}", "raft: {enabled: true, nodes: 3}",
		"migration: {enabled: false}", "migration: {enabled: true, hosts: 3, guests: 2, guest_memory: 16MiB, host_mode: processes"+migration+"}",
	).Replace(cfg))
}

// TestMigrationHostProcesses runs `soakd run` with
// components.migration.host_mode processes: the three hosts are `soakd
// node` child processes holding their guests' memory; guests migrate
// between them over their own TCP streams (through the fabric's proxies),
// verified byte for byte, with the owner records claimed in Raft through
// soakd; a crash of a host is a SIGKILL of its process, whose guests come
// back from their records when it restarts; a partition fails migrations
// over the link without breaking an invariant; the children end with soakd.
func TestMigrationHostProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s of real time")
	}
	cfg := migrationProcessesConfig(t, "", `  timeline:
    - {at: 8s, duration: 5s, kind: crash, target: migration/host}
    - {at: 16s, duration: 4s, kind: partition, target: migration/link}
`)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	if n := len(childNodes(t, d.cmd.Process.Pid)); n != 3 {
		t.Fatalf("%d host processes under soakd, want 3", n)
	}
	waitEvent(t, state, "fault_reverted", 2, 60*time.Second)
	time.Sleep(6 * time.Second) // migrations after the faults
	m := d.scrape("soakd_")
	ok := m[`soakd_migration_migrations_total{outcome="ok"}`]
	t.Logf("migrations ok %.0f, failed %.0f, unknown %.0f", ok, m[`soakd_migration_migrations_total{outcome="failed"}`],
		m[`soakd_migration_migrations_total{outcome="unknown"}`])
	if ok < 5 {
		t.Errorf("%.0f migrations between host processes succeeded, want at least 5\n%s", ok, d.stderr)
	}
	for k, v := range m {
		if strings.HasPrefix(k, "soakd_invariant_violations_total") && v != 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
	for _, h := range []string{"host-1", "host-2", "host-3"} {
		if v := m[`soakd_migration_host_up{host="`+h+`"}`]; v != 1 {
			t.Errorf("%s up = %v after the crash's restart", h, v)
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	all, types := journalTypes(t, state)
	crashed, restarted, finished := 0, 0, 0
	for _, e := range all {
		switch e.Type {
		case "migration_host_crashed":
			if e.Fields["signal"] == "SIGKILL" {
				crashed++
			}
		case "migration_host_restarted":
			restarted++
		case "migration_finished":
			finished++
		case "fault_failed", "fault_skipped", "invariant_violation":
			t.Errorf("%s: %v", e.Type, e.Fields)
		}
	}
	if crashed != 1 || restarted != 1 || finished == 0 {
		t.Errorf("journal: %d SIGKILLs, %d restarts, %d migrations finished; want 1, 1 and some (%s)", crashed, restarted, finished, types)
	}
}

// The planted bug: host-1's process corrupts every delta it sends
// (MigrationCorruptEnv). The destination process's byte-exact check
// catches it, the guest stays home, and soakd counts the violation.
func TestMigrationHostProcessCorruptionIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	// Several rounds with a fast random workload: re-sent pages go as deltas.
	cfg := migrationProcessesConfig(t, ", dirty_rate: 64MiB/s, dirty_pattern: random, xbzrle_cache: 16MiB, downtime_limit: 1ms, progress_timeout: 1s, on_timeout: force",
		"  timeline: []\n")
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, []string{MigrationCorruptEnv + "=host-1"}, "--config", cfg, "--state-dir", state)
	evs := waitEvent(t, state, "invariant_violation", 1, 60*time.Second)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	v := evs[0].Fields
	t.Logf("caught: %v", v)
	if v["invariant"] != "migration_pages" || v["source"] != "host-1" {
		t.Errorf("violation %v from %v, want migration_pages from host-1", v["invariant"], v["source"])
	}
}

// A source host process killed outside soakd in the middle of a migration
// (kill -9, not a fault): the migration's answer stream breaks, soakd
// settles it with the destination (which had not resumed the guest), the
// guest stays the source's in the books and its owner record, the death
// is journaled with the process's last lines, and no invariant breaks.
func TestMigrationSourceKilledMidMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	// One guest over a 25 MB/s link: a round of its 64 MiB takes seconds.
	cfg := strings.Replace(string(mustRead(t, migrationProcessesConfig(t, ", mode: internet", "  timeline: []\n"))),
		"guests: 2, guest_memory: 16MiB", "guests: 1, guest_memory: 64MiB", 1)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", writeTemp(t, cfg), "--state-dir", state)
	prog := waitEvent(t, state, "migration_progress", 1, 60*time.Second)[0].Fields
	src := prog["source"].(string)
	var pid int
	for _, p := range childNodes(t, d.cmd.Process.Pid) {
		if cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline")); bytes.Contains(cmdline, []byte("--id\x00"+src+"\x00")) {
			pid = p
		}
	}
	if pid == 0 {
		t.Fatalf("no process for %s", src)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s (pid %d) during migration %v's round %v", src, pid, prog["id"], prog["round"])
	fin := waitEvent(t, state, "migration_finished", 1, 60*time.Second)[0].Fields
	exited := waitEvent(t, state, "node_process_exited", 1, 10*time.Second)[0].Fields
	time.Sleep(3 * time.Second) // an audit after it
	m := d.scrape("soakd_")
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	t.Logf("finished: %v; journaled exit: %v", fin, exited)
	if fin["outcome"] == "ok" || fin["moved"] == true {
		t.Errorf("the migration of a killed source: %v", fin)
	}
	if exited["node"] != src || exited["component"] != "migration" {
		t.Errorf("journaled exit %v, want %s's", exited, src)
	}
	if v := m[`soakd_migration_host_up{host="`+src+`"}`]; v != 0 {
		t.Errorf("%s up = %v after its process died", src, v)
	}
	for k, v := range m {
		if strings.HasPrefix(k, "soakd_invariant_violations_total") && v != 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
}
