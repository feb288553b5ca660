package resource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

func TestDiskParams(t *testing.T) {
	for _, bad := range []map[string]string{
		{"mode": "shred"}, {"free": "lots"}, {"max_fill": "0"}, {"mode": "io", "free": "1GiB"},
		{"bytes": "64MiB"}, {"mode": "io", "bytes": "1KiB"}, {"size": "1GiB"},
	} {
		if err := Disk().Validate(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	for _, good := range []map[string]string{{}, {"free": "64MiB"}, {"free": "0", "max_fill": "1GiB"}, {"mode": "io", "bytes": "8MiB"}} {
		if err := Disk().Validate(good); err != nil {
			t.Errorf("%v: %v", good, err)
		}
	}
	if err := Disk().Bounds(config.Default(), map[string]string{"max_fill": "5GiB"}); err == nil {
		t.Error("max_fill above faults.resource.max_fill accepted")
	}
}

// smallFS mounts a tmpfs of size bytes for the test, or skips where this
// process may not mount.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the test needs root", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func diskEnv(stateDir string, floor, maxFill int64, cs ...components.Component) faults.Env {
	c := config.Default()
	c.Faults.Resource.DiskFloor = config.ByteSize(floor)
	c.Faults.Resource.MaxFill = config.ByteSize(maxFill)
	return faults.Env{Config: c, StateDir: stateDir, Components: cs}
}

// A balloon fills a small filesystem to `free`, so writes meet ENOSPC;
// the revert gives the space back.
func TestDiskBalloonFillsAndReverts(t *testing.T) {
	state := smallFS(t, "64m")
	in, err := Disk().New(diskEnv(state, 0, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := freeBytes(state)
	revert, err := in.Inject(context.Background(), "self", map[string]string{"free": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if free, _ := freeBytes(state); free > 1<<20 {
		t.Errorf("free %d after the balloon, want about 0", free)
	}
	err = os.WriteFile(filepath.Join(state, "x"), make([]byte, 1<<20), 0o600)
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("write under the balloon: %v, want ENOSPC", err)
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = revert(context.Background())
	if free, _ := freeBytes(state); free < before-(2<<20) {
		t.Errorf("free %d after the revert, was %d", free, before)
	}
	if err := os.WriteFile(filepath.Join(state, "x"), make([]byte, 1<<20), 0o600); err != nil {
		t.Errorf("write after the revert: %v", err)
	}
}

// The floor and max_fill bound a balloon; a filesystem already at the
// floor refuses the fault with the reason.
func TestDiskBalloonBounds(t *testing.T) {
	state := smallFS(t, "64m")
	in, _ := Disk().New(diskEnv(state, 16<<20, 1<<30))
	revert, err := in.Inject(context.Background(), "self", map[string]string{"free": "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if free, _ := freeBytes(state); free < 15<<20 || free > 17<<20 {
		t.Errorf("floor 16MiB: free %d", free)
	}
	if _, err := in.Inject(context.Background(), "self", nil); err == nil || !strings.Contains(err.Error(), "disk_floor") {
		t.Errorf("a second balloon at the floor: %v", err)
	}
	_ = revert(context.Background())
	in, _ = Disk().New(diskEnv(state, 0, 8<<20))
	before, _ := freeBytes(state)
	revert, err = in.Inject(context.Background(), "self", map[string]string{"free": "0", "max_fill": "4MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if free, _ := freeBytes(state); before-free > 5<<20 {
		t.Errorf("max_fill 4MiB took %d", before-free)
	}
	_ = revert(context.Background())
}

// A kill -9 leaves a balloon; the next run's disk kind removes it (and
// leaves every other file alone).
func TestDiskRemovesLeftBalloons(t *testing.T) {
	state := t.TempDir()
	deep := filepath.Join(state, "components", "raft", "node-1")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(state, BalloonPrefix+"-3"), filepath.Join(deep, BalloonPrefix+"-io-1"), filepath.Join(deep, "raft.db")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Disk().New(diskEnv(state, 0, 1<<20)); err != nil {
		t.Fatal(err)
	}
	var left []string
	_ = filepath.WalkDir(state, func(p string, e os.DirEntry, _ error) error {
		if !e.IsDir() {
			left = append(left, filepath.Base(p))
		}
		return nil
	})
	if strings.Join(left, ",") != "raft.db" {
		t.Fatalf("after the start: %v, want only raft.db", left)
	}
}

// io mode: a child rewrites a file with fsync; the revert stops it and
// removes the file.
func TestDiskIOChurnsAndReverts(t *testing.T) {
	state := t.TempDir()
	in, _ := Disk().New(diskEnv(state, 0, 1<<30))
	revert, err := in.Inject(context.Background(), "self", map[string]string{"mode": "io", "bytes": "4MiB"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	files, _ := filepath.Glob(filepath.Join(state, BalloonPrefix+"-io-*"))
	if len(files) != 1 {
		t.Fatalf("io files: %v", files)
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("io file after the revert: %v", err)
	}
}

// fakeNodes is a component with node resources, for targets.
type fakeNodes struct {
	components.Component
	dirs  map[string]string
	addrs map[string][]string
}

func (f fakeNodes) Name() string { return "toy" }
func (f fakeNodes) NodeDir(id string) (string, error) {
	if d, ok := f.dirs[id]; ok {
		return d, nil
	}
	return "", components.ErrNoSuchNode
}
func (f fakeNodes) ListenAddrs(id string) ([]string, error) {
	if a, ok := f.addrs[id]; ok {
		return a, nil
	}
	return nil, components.ErrNoSuchNode
}

// A node target fills the filesystem of the node's data dir, once per
// filesystem; a node outside the state dir is refused.
func TestDiskNodeTargets(t *testing.T) {
	state := t.TempDir()
	n1, n2 := filepath.Join(state, "n1"), filepath.Join(state, "n2")
	_ = os.Mkdir(n1, 0o700)
	_ = os.Mkdir(n2, 0o700)
	toy := fakeNodes{dirs: map[string]string{"node-1": n1, "node-2": n2, "node-3": os.TempDir()}}
	in, _ := Disk().New(diskEnv(state, 0, 2<<20, toy))
	revert, err := in.Inject(context.Background(), "toy/node-1,node-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := filepath.Glob(filepath.Join(n1, BalloonPrefix+"*"))
	b2, _ := filepath.Glob(filepath.Join(n2, BalloonPrefix+"*"))
	if len(b1) != 1 || len(b2) != 0 {
		t.Errorf("balloons: %v in node-1, %v in node-2; want one, on their one filesystem", b1, b2)
	}
	_ = revert(context.Background())
	for _, target := range []string{"toy/node-3", "toy/node-9", "nope/node-1", "toy"} {
		if _, err := in.Inject(context.Background(), target, nil); err == nil {
			t.Errorf("target %s accepted", target)
		}
	}
}
