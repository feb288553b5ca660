package nodeproc

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The members' addresses are picked once and read back on every later
// start; a run cannot change how many there are.
func TestMembers(t *testing.T) {
	dir := t.TempDir()
	m, err := Members(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["node-4"] == "" || !strings.HasPrefix(m["node-1"], "127.0.0.1:") {
		t.Fatalf("members %v", m)
	}
	again, err := Members(dir, 4)
	if err != nil || again["node-2"] != m["node-2"] {
		t.Fatalf("second start: %v, %v; want the first start's %v", again, err, m)
	}
	if _, err := Members(dir, 7); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("7 members over a run of 4: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, MembersFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Members(dir, 4); err == nil {
		t.Error("a torn members file was accepted")
	}
}

// Spawn returns once the process says where it serves, and quotes its last
// lines when it exits instead; Stop with crash is a SIGKILL.
func TestSpawn(t *testing.T) {
	p, err := Spawn("/bin/sh", []string{"-c", `echo 'level=INFO msg="serving HTTP" addr=127.0.0.1:4242' >&2; exec sleep 60`}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.HTTPAddr != "127.0.0.1:4242" || p.PID() == 0 {
		t.Errorf("addr %q pid %d", p.HTTPAddr, p.PID())
	}
	if !p.Alive() {
		t.Error("a running process is not alive")
	}
	p.Stop(true)
	if p.Alive() {
		t.Error("Stop returned before the process exited")
	}
	_, err = Spawn("/bin/sh", []string{"-c", "echo 'bad flag --peer' >&2; exit 2"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "bad flag --peer") {
		t.Errorf("a node that exits at start: %v, want its last lines", err)
	}
}

// A node process's warnings reach soakd's log, and so does an exit soakd
// did not ask for, with its last lines.
func TestSpawnLogsWarningsAndAnUnaskedExit(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	journaled := make(chan string, 1)
	p, err := Spawn("/bin/sh", []string{"-c", `echo 'msg="serving HTTP" addr=127.0.0.1:4242' >&2; echo 'level=ERROR msg="disk failed"' >&2; sleep 0.2; exit 3`}, log,
		func(err error, last string) { journaled <- err.Error() + ": " + last })
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if j := <-journaled; !strings.Contains(j, "exit status 3") || !strings.Contains(j, "disk failed") {
		t.Errorf("journaled %q", j)
	}
	out := buf.String()
	if !strings.Contains(out, "disk failed") || !strings.Contains(out, "exited on its own") || !strings.Contains(out, "exit status 3") {
		t.Errorf("soakd's log:\n%s", out)
	}
}
