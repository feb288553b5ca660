package systemd

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	unitFile = "soakd.service"
	// installedBinary is the ExecStart path in the committed unit.
	installedBinary = "/usr/local/bin/soakd"
	// securityThreshold is systemd-analyze's exposure threshold in tenths: 25 means
	// the unit fails the check above an overall exposure of 2.5.
	securityThreshold = 25
)

// systemdAnalyze returns the path of systemd-analyze or skips the test.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze is not installed: %v", err)
	}
	return p
}

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatalf("read unit: %v", err)
	}
	return string(b)
}

// withExecStart returns unit with the binary of its single ExecStart= line replaced
// by exe; the arguments are kept.
func withExecStart(t *testing.T, unit, exe string) string {
	t.Helper()
	lines := strings.Split(unit, "\n")
	n := 0
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "ExecStart=")
		if !ok {
			continue
		}
		n++
		bin, args, _ := strings.Cut(rest, " ")
		if bin != installedBinary {
			t.Fatalf("ExecStart binary is %q, want %q", bin, installedBinary)
		}
		lines[i] = "ExecStart=" + exe + " " + args
	}
	if n != 1 {
		t.Fatalf("unit has %d ExecStart= lines, want 1", n)
	}
	return strings.Join(lines, "\n")
}

// writeUnit writes unit as soakd.service in a fresh temp dir (the file name is the
// unit name systemd-analyze uses) and returns its path.
func writeUnit(t *testing.T, unit string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// buildSoakd builds the real daemon into dir and returns its path.
func buildSoakd(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found (go test puts GOROOT/bin on PATH): %v", err)
	}
	exe := filepath.Join(dir, "soakd")
	cmd := exec.CommandContext(t.Context(), goTool, "build", "-o", exe, "github.com/soakd/soakd/cmd/soakd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build github.com/soakd/soakd/cmd/soakd: %v\n%s", err, out)
	}
	return exe
}

type result struct {
	stdout, stderr string
	exitCode       int
}

// run runs a command to completion. A non-zero exit is reported in exitCode; failing
// to start at all is fatal.
func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), exitCode: cmd.ProcessState.ExitCode()}
}

func TestUnitVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	unit := readUnit(t)

	// The harness must be able to fail: the same unit pointing at a binary that does
	// not exist is rejected, with a message naming the problem.
	t.Run("rejects_missing_binary", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-such-soakd")
		r := run(t, analyze, "verify", writeUnit(t, withExecStart(t, unit, missing)))
		if r.exitCode == 0 || !strings.Contains(r.stdout+r.stderr, "no-such-soakd") {
			t.Fatalf("verify accepted a unit whose binary is missing: exit %d\nstdout:\n%s\nstderr:\n%s",
				r.exitCode, r.stdout, r.stderr)
		}
	})

	// The committed unit, with ExecStart pointing at a freshly built soakd, must
	// verify cleanly: exit 0 and no output at all, since every line systemd-analyze
	// prints is a warning or an error. No output is filtered.
	exe := buildSoakd(t, t.TempDir())
	path := writeUnit(t, withExecStart(t, unit, exe))
	r := run(t, analyze, "verify", path)
	if r.exitCode != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("systemd-analyze verify %s: exit %d\nstdout:\n%s\nstderr:\n%s", path, r.exitCode, r.stdout, r.stderr)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?).*`)

// security runs the offline security analysis of unit and returns the result and the
// overall exposure (0.0 best, 10.0 worst).
func security(t *testing.T, analyze, unit string) (result, float64) {
	t.Helper()
	r := run(t, analyze, "security", "--offline=true", "--threshold="+strconv.Itoa(securityThreshold), writeUnit(t, unit))
	m := exposureRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no overall exposure line in systemd-analyze security output (exit %d)\nstdout:\n%s\nstderr:\n%s",
			r.exitCode, r.stdout, r.stderr)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return r, score
}

func TestUnitSecurity(t *testing.T) {
	analyze := systemdAnalyze(t)
	unit := readUnit(t)

	r, score := security(t, analyze, unit)
	t.Logf("%s", strings.TrimSpace(exposureRE.FindString(r.stdout)))
	if r.exitCode != 0 || score*10 > securityThreshold {
		t.Fatalf("exposure %.1f exceeds %.1f (exit %d); findings:\n%s\nstderr:\n%s",
			score, float64(securityThreshold)/10, r.exitCode, findings(r.stdout), r.stderr)
	}

	// The threshold must be able to fail: the same unit without its [Service]
	// sandboxing (only what makes it run) scores far worse and is rejected.
	t.Run("rejects_unhardened_unit", func(t *testing.T) {
		r, bare := security(t, analyze, stripSandbox(unit))
		if r.exitCode == 0 || bare*10 <= securityThreshold {
			t.Fatalf("unhardened unit passed: exposure %.1f, exit %d", bare, r.exitCode)
		}
		t.Logf("unhardened exposure %.1f, hardened %.1f", bare, score)
	})
}

// findings returns the failing (✗) lines of a security report.
func findings(report string) string {
	var b strings.Builder
	for l := range strings.Lines(report) {
		if strings.HasPrefix(l, "✗") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// stripSandbox keeps only the [Service] keys that make soakd run and drops every
// hardening directive.
func stripSandbox(unit string) string {
	keep := map[string]bool{"Type": true, "NotifyAccess": true, "ExecStart": true, "WatchdogSec": true, "Restart": true}
	var b strings.Builder
	section := ""
	for l := range strings.Lines(unit) {
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "[") {
			section = s
		}
		if section == "[Service]" {
			if k, _, ok := strings.Cut(s, "="); ok && !keep[k] {
				continue
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// unitSections maps section -> key -> values in file order. Repeated keys (such as
// SystemCallFilter=) keep every value; comments, blank lines and backslash line
// continuations are handled as systemd does.
type unitSections map[string]map[string][]string

func parseUnit(t *testing.T, text string) unitSections {
	t.Helper()
	u := unitSections{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	lineNo := 0
	pending := ""
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", unitFile, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a key=value line in a section: %q", unitFile, lineNo, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u[section][k] = append(u[section][k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the effective value of a single-valued key: the last assignment.
func (u unitSections) get(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

func TestUnitContract(t *testing.T) {
	u := parseUnit(t, readUnit(t))

	equal := map[[2]string]string{
		{"Service", "Type"}:               "notify", // soakd sends READY=1, STATUS=, WATCHDOG=1
		{"Service", "NotifyAccess"}:       "main",
		{"Service", "Restart"}:            "on-failure", // a restart resumes the run
		{"Service", "StateDirectory"}:     "soakd",      // $STATE_DIRECTORY=/var/lib/soakd
		{"Service", "StateDirectoryMode"}: "0700",       // holds the API bearer token
		{"Service", "KillSignal"}:         "SIGTERM",    // soakd's graceful shutdown signal
		{"Service", "ProtectSystem"}:      "strict",
		{"Service", "NoNewPrivileges"}:    "yes",
		{"Service", "PrivateTmp"}:         "yes",
		{"Install", "WantedBy"}:           "multi-user.target",
	}
	for sk, want := range equal {
		if got, ok := u.get(sk[0], sk[1]); !ok || got != want {
			t.Errorf("[%s] %s=%q, want %q", sk[0], sk[1], got, want)
		}
	}

	for _, sk := range [][2]string{{"Unit", "Description"}, {"Unit", "Documentation"}, {"Service", "MemoryMax"}} {
		if v, ok := u.get(sk[0], sk[1]); !ok || v == "" {
			t.Errorf("[%s] %s= is not set", sk[0], sk[1])
		}
	}

	execStart, _ := u.get("Service", "ExecStart")
	if !strings.HasPrefix(execStart, installedBinary+" ") || !strings.Contains(execStart, " run --config /etc/soakd/soakd.yaml") {
		t.Errorf("ExecStart=%q, want %s run --config /etc/soakd/soakd.yaml", execStart, installedBinary)
	}

	// soakd pings at WatchdogSec/2 and exits within ~30s of SIGTERM: the watchdog must be
	// on, and the stop timeout must leave room beyond soakd's own shutdown budget.
	watchdog := duration(t, u, "WatchdogSec")
	if watchdog <= 0 {
		t.Errorf("WatchdogSec=%v, want > 0", watchdog)
	}
	if stop := duration(t, u, "TimeoutStopSec"); stop <= 30*time.Second {
		t.Errorf("TimeoutStopSec=%v, want > 30s (soakd may take up to 30s to shut down)", stop)
	}

	// soakd needs AF_UNIX for $NOTIFY_SOCKET and AF_INET for its loopback HTTP and clusters.
	families := strings.Fields(strings.Join(u["Service"]["RestrictAddressFamilies"], " "))
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies=%v lacks %s", families, f)
		}
	}

	// The fds fault needs headroom far beyond the usual 1024.
	if v, _ := u.get("Service", "LimitNOFILE"); v != "infinity" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 65536 {
			t.Errorf("LimitNOFILE=%q, want >= 65536", v)
		}
	}
}

// duration parses a [Service] time value of the form systemd and Go both accept
// (e.g. "30s", "1m30s").
func duration(t *testing.T, u unitSections, key string) time.Duration {
	t.Helper()
	v, ok := u.get("Service", key)
	if !ok {
		t.Errorf("%s= is not set", key)
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Errorf("%s=%q: use a unit suffix Go can parse too (e.g. 30s): %v", key, v, err)
		return 0
	}
	return d
}
