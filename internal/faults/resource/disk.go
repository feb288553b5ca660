package resource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// Disk modes: a balloon file taking the filesystem's free space, or a
// child process keeping it busy with fsync'd writes.
const (
	diskModeBalloon = "balloon"
	diskModeIO      = "io"
)

// BalloonPrefix starts the name of every file a disk fault writes. They
// live in the target's data directory (the state dir for target self),
// always under the state dir, so a run that starts removes any that a
// kill -9 left behind.
const BalloonPrefix = ".soakd-balloon"

// ioBlock is what the io child writes between fsyncs.
const ioBlock = 1 << 20

// Disk is the "disk" fault kind. Mode balloon (the default) fills the
// filesystem holding the target's data with a file until `free` bytes
// remain, at most `max_fill` and never below faults.resource.disk_floor;
// verified by statfs, removed on revert. Mode io runs a child that
// rewrites a file of `bytes` on that filesystem with an fsync after every
// MiB; verified by the bytes it reports written.
func Disk() faults.Spec {
	return faults.Spec{
		Name: "disk",
		Params: []faults.Param{
			{Name: "mode", Doc: "balloon (fill the filesystem, the default) or io (fsync-heavy writes)"},
			{Name: "free", Doc: "balloon: free space to leave (default: faults.resource.disk_floor)"},
			{Name: "max_fill", Doc: "balloon: largest balloon (default and limit: faults.resource.max_fill)"},
			{Name: "bytes", Doc: "io: size of the file rewritten (default 64MiB)"},
		},
		Check: func(p map[string]string) error { _, err := parseDisk(p); return err },
		Bounds: func(c *config.Config, p map[string]string) error {
			d, err := parseDisk(p)
			if err == nil && d.maxFill > c.Faults.Resource.MaxFill.Bytes() {
				return faults.BadParam("max_fill", "%s is above faults.resource.max_fill (%s)",
					config.ByteSize(d.maxFill), c.Faults.Resource.MaxFill)
			}
			return err
		},
		Self:  true,
		Roles: []components.Role{components.RoleLeader, components.RoleFollower},
		Draw: func(rng *rand.Rand) map[string]string {
			if rng.IntN(2) == 0 {
				return map[string]string{"mode": diskModeIO}
			}
			return map[string]string{"mode": diskModeBalloon}
		},
		New: func(env faults.Env) (faults.Injector, error) {
			in := &diskInjector{log: logger(env), bounds: bounds(env), stateDir: env.StateDir,
				nodes: nodeResources(env.Components)}
			if env.StateDir != "" {
				n, err := RemoveBalloons(env.StateDir)
				if err != nil {
					return nil, fmt.Errorf("disk: removing balloons a previous incarnation left: %w", err)
				}
				if n > 0 {
					in.log.Warn("removed balloon files a previous incarnation left", "files", n)
				}
			}
			return in, nil
		},
	}
}

type diskParams struct {
	mode    string
	free    int64 // -1: the floor
	maxFill int64 // -1: the bound
	bytes   int64
}

func parseDisk(p map[string]string) (diskParams, error) {
	d := diskParams{mode: diskModeBalloon, free: -1, maxFill: -1, bytes: 64 << 20}
	var errs []error
	if s, ok := p["mode"]; ok {
		if s != diskModeBalloon && s != diskModeIO {
			errs = append(errs, faults.BadParam("mode", "must be balloon or io, got %q", s))
		}
		d.mode = s
	}
	size := func(name string, min int64) int64 {
		s, ok := p[name]
		if !ok {
			return -1
		}
		b, err := config.ParseByteSize(s)
		if err != nil || b.Bytes() < min {
			errs = append(errs, faults.BadParam(name, "must be a size of at least %s, got %q", config.ByteSize(min), s))
		}
		return b.Bytes()
	}
	d.free, d.maxFill = size("free", 0), size("max_fill", 1)
	if b := size("bytes", ioBlock); b > 0 {
		d.bytes = b
	}
	if d.mode == diskModeIO && (d.free >= 0 || d.maxFill >= 0) {
		errs = append(errs, faults.BadParam("mode", "free and max_fill apply to mode balloon; io takes bytes"))
	}
	if _, ok := p["bytes"]; ok && d.mode == diskModeBalloon {
		errs = append(errs, faults.BadParam("bytes", "applies to mode io; a balloon takes free and max_fill"))
	}
	return d, errors.Join(errs...)
}

type diskInjector struct {
	log      *slog.Logger
	bounds   config.ResourceBounds
	stateDir string
	nodes    map[string]components.NodeResources
	seq      atomic.Uint64
}

func (in *diskInjector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	d, err := parseDisk(params)
	if err != nil {
		return nil, err
	}
	dirs, err := in.dirs(target)
	if err != nil {
		return nil, err
	}
	var reverts []faults.Revert
	undo := func() {
		for _, r := range reverts {
			_ = r(context.Background())
		}
	}
	for _, dir := range dirs {
		var r faults.Revert
		if d.mode == diskModeIO {
			r, err = in.churn(ctx, dir, d)
		} else {
			r, err = in.balloon(ctx, dir, d)
		}
		if err != nil {
			undo()
			return nil, err
		}
		reverts = append(reverts, r)
	}
	return func(ctx context.Context) error {
		var errs []error
		for _, r := range reverts {
			errs = append(errs, r(ctx))
		}
		return errors.Join(errs...)
	}, nil
}

// dirs are the data directories of a target, one per filesystem.
func (in *diskInjector) dirs(target string) ([]string, error) {
	if target == "self" {
		if in.stateDir == "" {
			return nil, errors.New("disk: target self: this run has no state dir")
		}
		return []string{in.stateDir}, nil
	}
	res, comp, ids, err := resolveNodes(in.nodes, target)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	var out []string
	seen := map[unix.Fsid]bool{}
	for _, id := range ids {
		dir, err := res.NodeDir(id)
		if err != nil {
			return nil, fmt.Errorf("disk: %s/%s: %w", comp, id, err)
		}
		if in.stateDir != "" && !within(dir, in.stateDir) {
			return nil, fmt.Errorf("disk: %s/%s keeps its data in %s, outside the state dir, where a balloon would not be cleaned after a kill -9", comp, id, dir)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return nil, fmt.Errorf("disk: %s/%s: statfs %s: %w", comp, id, dir, err)
		}
		if !seen[st.Fsid] {
			seen[st.Fsid] = true
			out = append(out, dir)
		}
	}
	return out, nil
}

// balloon fills dir's filesystem; the revert removes the file.
func (in *diskInjector) balloon(ctx context.Context, dir string, d diskParams) (faults.Revert, error) {
	floor := in.bounds.DiskFloor.Bytes()
	leave := max(d.free, floor)
	maxFill := in.bounds.MaxFill.Bytes()
	if d.maxFill >= 0 {
		maxFill = min(maxFill, d.maxFill)
	}
	before, err := freeBytes(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	size := min(before-leave, maxFill)
	if size <= 0 {
		return nil, fmt.Errorf("disk: %s free on %s leaves nothing to fill above %s (free, or faults.resource.disk_floor)",
			config.ByteSize(before), dir, config.ByteSize(leave))
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d-%d", BalloonPrefix, os.Getpid(), in.seq.Add(1)))
	if err := writeBalloon(path, size); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("disk: balloon %s: %w", path, err)
	}
	after, err := freeBytes(dir)
	// The balloon took its size, or the filesystem is as full as asked
	// (others wrote meanwhile, and the balloon stopped at ENOSPC).
	if err == nil && before-after < size*9/10 && after > leave+ioBlock {
		err = fmt.Errorf("free space went %s → %s, want it down by about %s", config.ByteSize(before), config.ByteSize(after), config.ByteSize(size))
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("disk: balloon %s: %w", path, err)
	}
	faults.Verified(ctx, fmt.Sprintf("free space %s → %s", config.ByteSize(before), config.ByteSize(after)))
	in.log.Info("disk fault verified", "balloon", path, "size", config.ByteSize(size), "free_before", config.ByteSize(before),
		"free_after", config.ByteSize(after))
	return removeOnce(path), nil
}

// writeBalloon allocates up to size bytes to a new file, in chunks that
// halve when the filesystem is full (others write meanwhile), and syncs
// it. It uses fallocate, or writes zeros where the filesystem has none.
func writeBalloon(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	const minChunk = 64 << 10
	var zeros []byte
	chunk, off := int64(64<<20), int64(0)
	for off < size && chunk >= minChunk {
		n := min(chunk, size-off)
		err := unix.Fallocate(int(f.Fd()), 0, off, n)
		if errors.Is(err, unix.EOPNOTSUPP) {
			if zeros == nil {
				zeros = make([]byte, ioBlock)
			}
			err = writeZeros(f, off, n, zeros)
		}
		switch {
		case errors.Is(err, unix.ENOSPC):
			chunk /= 2
		case err != nil:
			return err
		default:
			off += n
		}
	}
	if off == 0 {
		return unix.ENOSPC
	}
	return f.Sync()
}

func writeZeros(f *os.File, off, n int64, zeros []byte) error {
	for end := off + n; off < end; {
		k, err := f.WriteAt(zeros[:min(end-off, int64(len(zeros)))], off)
		off += int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// churn starts an io child writing on dir's filesystem.
func (in *diskInjector) churn(ctx context.Context, dir string, d diskParams) (faults.Revert, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s-io-%d-%d", BalloonPrefix, os.Getpid(), in.seq.Add(1)))
	c, err := startChild("io", "--file", path, "--bytes", strconv.FormatInt(d.bytes, 10),
		"--floor", strconv.FormatInt(in.bounds.DiskFloor.Bytes(), 10))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (faults.Revert, error) {
		_ = c.stop()
		_ = os.Remove(path)
		return nil, err
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case <-c.progress:
		case <-c.done:
			err := c.err
			return fail(fmt.Errorf("disk: io child exited: %v", err))
		case <-timeout.C:
			return fail(fmt.Errorf("disk: io child wrote nothing in 10s (last report %q)", c.lastLine()))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		if word, n, _ := strings.Cut(c.lastLine(), " "); word == "wrote" && n != "0" {
			break
		}
	}
	faults.Verified(ctx, "io child writing: "+c.lastLine())
	in.log.Info("disk fault verified", "mode", diskModeIO, "pid", c.cmd.Process.Pid, "file", path, "report", c.lastLine())
	rm := removeOnce(path)
	return func(ctx context.Context) error {
		return errors.Join(c.stop(), rm(ctx))
	}, nil
}

// churnIO is the io child: it rewrites file in ioBlock writes, each
// followed by an fsync, growing it to size while free space stays above
// floor, and reports "wrote N" (bytes so far) about once a second.
func churnIO(file string, size, floor int64, out io.Writer, stop <-chan struct{}) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("stress io: %w", err)
	}
	defer f.Close()
	block := make([]byte, ioBlock)
	for i := range block {
		block[i] = byte(i)
	}
	var off, written, length int64
	last := time.Time{}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if off >= size {
			off = 0
		}
		if off >= length { // growing: only while free space stays above the floor
			if free, err := freeBytes(filepath.Dir(file)); err != nil || free-ioBlock < floor {
				if length == 0 {
					return fmt.Errorf("stress io: no room for %d bytes above the floor %d", ioBlock, floor)
				}
				off = 0
			}
		}
		if _, err := f.WriteAt(block, off); err != nil {
			return fmt.Errorf("stress io: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("stress io: %w", err)
		}
		off += ioBlock
		length = max(length, off)
		written += ioBlock
		if time.Since(last) >= time.Second || written == ioBlock {
			fmt.Fprintln(out, "wrote", written)
			last = time.Now()
		}
	}
}

// freeBytes is the space available to soakd on dir's filesystem.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// removeOnce removes path, syncing its directory so the space is back.
func removeOnce(path string) faults.Revert {
	var once sync.Once
	var err error
	return func(context.Context) error {
		once.Do(func() {
			if err = os.Remove(path); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
			if d, derr := os.Open(filepath.Dir(path)); derr == nil {
				_ = d.Sync()
				d.Close()
			}
		})
		return err
	}
}

// RemoveBalloons removes every disk fault file under stateDir (they sit at
// most a few directories down) and returns how many it removed.
func RemoveBalloons(stateDir string) (int, error) {
	n := 0
	root := filepath.Clean(stateDir)
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() && strings.Count(strings.TrimPrefix(path, root), string(filepath.Separator)) >= 4 {
			return filepath.SkipDir
		}
		if !e.IsDir() && strings.HasPrefix(e.Name(), BalloonPrefix) {
			if err := os.Remove(path); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
