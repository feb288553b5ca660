package nodeproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
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
	p, err := Spawn("/bin/sh", []string{"-c", `echo 'level=INFO msg="serving HTTP" addr=127.0.0.1:4242' >&2; exec sleep 60`})
	if err != nil {
		t.Fatal(err)
	}
	if p.HTTPAddr != "127.0.0.1:4242" || p.PID() == 0 {
		t.Errorf("addr %q pid %d", p.HTTPAddr, p.PID())
	}
	p.Stop(true)
	select {
	case <-p.Exited():
	default:
		t.Error("Stop returned before the process exited")
	}
	_, err = Spawn("/bin/sh", []string{"-c", "echo 'bad flag --peer' >&2; exit 2"})
	if err == nil || !strings.Contains(err.Error(), "bad flag --peer") {
		t.Errorf("a node that exits at start: %v, want its last lines", err)
	}
}
