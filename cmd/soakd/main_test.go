package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/run"
	"github.com/soakd/soakd/internal/status"
	"github.com/soakd/soakd/internal/testutil"
)

// soakdBin is the real binary, built once; these tests drive it as a user
// and systemd would.
var soakdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "soakd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	soakdBin = filepath.Join(dir, "soakd")
	out, err := exec.Command("go", "build", "-o", soakdBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build soakd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testConfig writes a config with fast checkpoints and no components, so
// lifecycle tests do not wait on cluster start-up.
func testConfig(t *testing.T, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "soakd.yaml")
	cfg := `
run:
  duration: 1h
  warmup: 0s
  checkpoint_interval: 200ms
  shutdown_timeout: 5s
listen: 127.0.0.1:0
components:
  raft: {enabled: false}
  pbft: {enabled: false}
  migration: {enabled: false}
` + extra
	if !strings.Contains(extra, "faults:") {
		cfg += "faults:\n  timeline: []\n"
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running `soakd run` process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	stderr *testutil.SyncBuffer
	exited chan struct{}
	err    error
}

var listenRE = regexp.MustCompile(`msg="serving HTTP" addr=(\S+)`)

func startDaemon(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	d := startProc(t, env, append([]string{"run"}, args...)...)
	d.waitReady()
	return d
}

// startProc starts soakd with args and waits until it logs its HTTP
// address.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	d := &proc{t: t, stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(soakdBin, args...)
	d.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	d.cmd.Stderr = io.MultiWriter(d.stderr, pw)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		d.err = d.cmd.Wait()
		pw.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
	select {
	case d.addr = <-addrc:
	case <-d.exited:
		t.Fatalf("soakd exited before serving: %v\n%s", d.err, d.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("soakd did not start serving\n%s", d.stderr)
	}
	return d
}

func (d *proc) waitReady() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("soakd never ready\n%s", d.stderr)
}

func (d *proc) status() status.Status {
	d.t.Helper()
	resp, err := http.Get("http://" + d.addr + "/api/v1/status")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		d.t.Fatal(err)
	}
	return st
}

// wait returns the exit code, failing the test if the process outlives limit.
func (d *proc) wait(limit time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(limit):
		d.t.Fatalf("soakd still running after %v\n%s", limit, d.stderr)
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		d.t.Fatal(d.err)
	}
	return 0
}

func soakd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(soakdBin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestKill9ResumesSameRun(t *testing.T) {
	cfg := testConfig(t, "")
	state := filepath.Join(t.TempDir(), "state")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	first := d.status()
	if first.Incarnation != 1 || first.RunID == "" {
		t.Fatalf("first status %+v", first)
	}
	// Let a few checkpoints land, then kill -9: no shutdown code runs.
	var before run.State
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		before, err = run.ReadState(state)
		if err == nil && before.ElapsedSeconds >= 1.5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint with elapsed >= 1.5s: %+v %v", before, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(10 * time.Second)
	killed, err := run.ReadState(state)
	if err != nil {
		t.Fatalf("state after kill -9: %v", err)
	}

	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state)
	st := d2.status()
	if st.RunID != first.RunID || st.Incarnation != 2 {
		t.Fatalf("resumed run %s incarnation %d, want %s incarnation 2", st.RunID, st.Incarnation, first.RunID)
	}
	if st.ElapsedSeconds < killed.ElapsedSeconds {
		t.Fatalf("elapsed reset: %.2fs after resume, %.2fs checkpointed before kill", st.ElapsedSeconds, killed.ElapsedSeconds)
	}
	evs, err := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "run_resumed")
	if err != nil || len(evs) != 1 || evs[0].Incarnation != 2 {
		t.Fatalf("run_resumed events = %+v, %v", evs, err)
	}
	if err := d2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d2.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, d2.stderr)
	}
}

// notifyListener is a real unixgram NOTIFY_SOCKET, as systemd provides.
func notifyListener(t *testing.T) (path string, msgs chan string) {
	t.Helper()
	// Unix socket paths are short; t.TempDir() can exceed the limit.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs = make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					select {
					case msgs <- line:
					default:
					}
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return path, msgs
}

func expectNotify(t *testing.T, msgs chan string, prefix string, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(m, prefix) {
				return
			}
		case <-timeout:
			t.Fatalf("no %s notification within %v", prefix, within)
		}
	}
}

func TestSystemdNotifyProtocol(t *testing.T) {
	sock, msgs := notifyListener(t)
	cfg := testConfig(t, "")
	d := startDaemon(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000"}, "--config", cfg, "--state-dir", filepath.Join(t.TempDir(), "s"))
	expectNotify(t, msgs, "READY=1", 10*time.Second)
	expectNotify(t, msgs, "STATUS=run ", 5*time.Second)
	// WatchdogSec=1s: pings every 500ms while the loop is healthy.
	for range 3 {
		expectNotify(t, msgs, "WATCHDOG=1", 5*time.Second)
	}
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expectNotify(t, msgs, "STOPPING=1", 10*time.Second)
	if code := d.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, d.stderr)
	}
	t.Logf("SIGTERM to exit: %v", time.Since(start))
}

func TestRunCompletesAndRefusesRestart(t *testing.T) {
	cfg := testConfig(t, "")
	state := filepath.Join(t.TempDir(), "state")
	d := startDaemon(t, nil, "--config", cfg, "--state-dir", state, "--duration", "2s")
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("completed run exited %d\n%s", code, d.stderr)
	}
	st, err := run.ReadState(state)
	if err != nil || !st.Completed || st.ElapsedSeconds < 2 {
		t.Fatalf("state %+v, %v", st, err)
	}
	_, stderr, code := soakd(t, "run", "--config", cfg, "--state-dir", state)
	if code != 0 || !strings.Contains(stderr, "is complete") || !strings.Contains(stderr, st.RunID) {
		t.Fatalf("rerun of a completed run: exit %d, stderr %q", code, stderr)
	}
	d2 := startDaemon(t, nil, "--config", cfg, "--state-dir", state, "--fresh")
	if s := d2.status(); s.RunID == st.RunID || s.Incarnation != 1 {
		t.Fatalf("fresh run status %+v", s)
	}
	if _, err := run.ReadState(filepath.Join(state, "previous", st.RunID)); err != nil {
		t.Fatalf("archived run: %v", err)
	}
	_ = d2.cmd.Process.Signal(syscall.SIGTERM)
	d2.wait(10 * time.Second)
}

func TestStatusCommand(t *testing.T) {
	// The embedded default config: what `make run` starts.
	d := startDaemon(t, nil, "--state-dir", filepath.Join(t.TempDir(), "s"), "--listen", "127.0.0.1:0")
	out, stderr, code := soakd(t, "status", "--addr", d.addr)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`progress\s+\[#*\.+\]\s+\d+\.\d%\s+\S+ / 72h0m0s`).MatchString(out) {
		t.Fatalf("status output lacks a progress bar with elapsed/target:\n%s", out)
	}
	out, _, code = soakd(t, "status", "--addr", d.addr, "--format", "json")
	var st status.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.TargetSeconds != 72*3600 || st.Phase != "running" {
		t.Fatalf("json status: exit %d %s", code, out)
	}
	resp, err := http.Get("http://" + d.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"soakd_build_info{", "soakd_run_elapsed_seconds ", "soakd_run_target_seconds 259200", "soakd_run_incarnation 1"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	if code := d.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
	// No daemon: a one-line error and exit 1.
	_, stderr, code = soakd(t, "status", "--addr", d.addr)
	if code != 1 || !strings.Contains(stderr, "no soakd answering") {
		t.Fatalf("status without daemon: exit %d %q", code, stderr)
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "no command given"},
		{[]string{"run", "--no-such-flag"}, 2, "unknown flag"},
		{[]string{"check-config"}, 2, "accepts 1 arg"},
		{[]string{"status", "--format", "xml"}, 2, "--format"},
		{[]string{"run", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"nosuchcommand"}, 2, "unknown command"},
		{[]string{"check-config", "/nonexistent/soakd.yaml"}, 1, "/nonexistent/soakd.yaml"},
		{[]string{"version"}, 0, ""},
	}
	for _, c := range cases {
		out, stderr, code := soakd(t, c.args...)
		if code != c.code || !strings.Contains(out+stderr, c.msg) {
			t.Errorf("soakd %v: exit %d, output %q; want exit %d containing %q", c.args, code, out+stderr, c.code, c.msg)
		}
	}
}

func TestPortInUseFailsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, "")
	state := filepath.Join(t.TempDir(), "s")
	_, stderr, code := soakd(t, "run", "--config", cfg, "--state-dir", state, "--listen", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "listen "+ln.Addr().String()) || strings.Contains(stderr, "panic") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// The failed start is recorded and the run is still resumable.
	evs, _ := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "run_failed")
	if len(evs) != 1 {
		t.Fatalf("run_failed events: %+v", evs)
	}
}

// TestCheckConfig runs the binary over every bad config of the config
// package's table: exit 1 and exactly the expected lines, each starting with
// the field path.
func TestCheckConfig(t *testing.T) {
	files, err := filepath.Glob("../../internal/config/testdata/*.bad.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("want >= 20 bad configs, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, line := range strings.Split(string(data), "\n") {
			if e, ok := strings.CutPrefix(line, "# error: "); ok {
				want = append(want, e)
			}
		}
		out, stderr, code := soakd(t, "check-config", f)
		got := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if code != 1 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("check-config %s: exit %d\n got: %q\nwant: %q\nstderr: %s", filepath.Base(f), code, got, want, stderr)
		}
	}
	for _, good := range []string{"../../systemd/soakd.yaml", "../../internal/config/default.yaml"} {
		out, stderr, code := soakd(t, "check-config", good)
		if code != 0 || out != "ok\n" {
			t.Errorf("check-config %s: exit %d %q %q", good, code, out, stderr)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "soakd.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPlanIsReproducible(t *testing.T) {
	start := time.Now()
	a, _, code := soakd(t, "plan")
	took := time.Since(start)
	b, _, _ := soakd(t, "plan")
	c, _, _ := soakd(t, "plan", "--seed", "2")
	if code != 0 || a != b {
		t.Fatalf("plan twice: exit %d, identical %v", code, a == b)
	}
	if a == c {
		t.Fatal("a different seed gave the same plan")
	}
	if !strings.HasPrefix(a, "# seed 1, duration 72h0m0s,") || strings.Count(a, "\n") < 500 {
		t.Fatalf("plan output:\n%.300s", a)
	}
	t.Logf("72 h plan, whole process: %v (timing belongs to BenchmarkPlan72h)", took)
	j, _, code := soakd(t, "plan", "--format", "json")
	var doc struct {
		Faults []map[string]any `json:"faults"`
	}
	if code != 0 || json.Unmarshal([]byte(j), &doc) != nil || len(doc.Faults) != strings.Count(a, "\n")-2 {
		t.Fatalf("json plan: exit %d, %d faults", code, len(doc.Faults))
	}
}
