package profiling

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/fsutil"
)

// SnapshotInfo is one profile file in the ring.
type SnapshotInfo struct {
	Time  time.Time // the round's clock time (UTC, millisecond precision, from the file name)
	Kind  string    // heap | allocs | goroutine | goroutineleak
	Path  string
	Bytes int64
}

// Snapshot file names are <UTC time>-<kind>.pb.gz, e.g.
// 20300102T030405.000Z-heap.pb.gz: fixed width, so lexical order is time
// order, and no ':' so the names are safe to copy anywhere.
const (
	snapshotTimeLayout = "20060102T150405.000Z"
	snapshotSuffix     = ".pb.gz"
	tmpPrefix          = ".snapshot-"
	tmpSuffix          = ".tmp"
)

// kindOrder orders the files of one round; kinds not listed (from another
// soakd version) sort after these.
var kindOrder = []string{"heap", "allocs", "goroutine", "goroutineleak"}

func snapshotKinds() []string {
	kinds := []string{"heap", "allocs", "goroutine"}
	if SupportsGoroutineLeakProfile() {
		kinds = append(kinds, "goroutineleak")
	}
	return kinds
}

// Snapshots lists the files in the ring, oldest first.
func (p *Profiler) Snapshots() []SnapshotInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.files)
}

// SnapshotNow writes one round of profiles now, then prunes the ring to
// max_bytes. The heap profile is taken right after a runtime.GC, so its
// in-use figures are those of this moment rather than of the last natural
// GC (pprof publishes heap data at the end of a cycle, up to two cycles
// late); at one forced GC per interval (5 m by default) the cost is nil.
// The allocs file carries the same samples as heap with alloc_space as its
// default type, so `go tool pprof` opens each the way its name says.
//
// Files are written as a temp file plus rename, so a reader never sees a
// half-written profile, but not fsynced: profiles are diagnostics, not run
// state. A crash loses at most the last round, which the resumed run's next
// tick replaces; files left empty by a crash are removed at start-up. And a
// round must not stall on fsync while soakd injects disk faults.
//
// A kind that fails (disk full) does not stop the others; the errors are
// joined.
func (p *Profiler) SnapshotNow() error {
	p.snapMu.Lock()
	defer p.snapMu.Unlock()
	now := p.clock.Now().UTC().Truncate(time.Millisecond)
	runtime.GC()
	var errs []error
	for _, kind := range p.kinds {
		info, err := p.writeProfile(now, kind)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.add(info)
	}
	p.prune()
	return errors.Join(errs...)
}

func (p *Profiler) writeProfile(now time.Time, kind string) (SnapshotInfo, error) {
	prof := pprof.Lookup(kind)
	if prof == nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: no such profile in this runtime", kind)
	}
	path := filepath.Join(p.dir, now.Format(snapshotTimeLayout)+"-"+kind+snapshotSuffix)
	var n countingWriter
	// debug=0: gzip-compressed profile.proto, labels included.
	err := fsutil.WriteFile(path, 0o600, func(w io.Writer) error { return prof.WriteTo(io.MultiWriter(w, &n), 0) })
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: %w", kind, err)
	}
	return SnapshotInfo{Time: now, Kind: kind, Path: path, Bytes: int64(n)}, nil
}

// countingWriter counts the bytes written through it.
type countingWriter int64

func (c *countingWriter) Write(b []byte) (int, error) {
	*c += countingWriter(len(b))
	return len(b), nil
}

// add indexes a new file; a file of the same name (two rounds within one
// millisecond of clock time) was replaced on disk, so it is replaced here.
func (p *Profiler) add(info SnapshotInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.IndexFunc(p.files, func(f SnapshotInfo) bool { return f.Path == info.Path }); i >= 0 {
		p.total -= p.files[i].Bytes
		p.files = slices.Delete(p.files, i, i+1)
	}
	p.files = append(p.files, info)
	p.total += info.Bytes
	if n := len(p.files); n > 1 && compareSnapshots(p.files[n-2], info) > 0 {
		slices.SortStableFunc(p.files, compareSnapshots)
	}
}

// prune deletes the oldest files until the ring's total is at most
// max_bytes. The bound is strict: if one round alone is larger than
// max_bytes, its own files go too, and the warning says so. A file that
// cannot be deleted is dropped from the index with a warning (counting it
// forever would make the ring delete everything else instead). Callers hold
// snapMu.
func (p *Profiler) prune() {
	p.mu.Lock()
	defer p.mu.Unlock()
	removed := 0
	for p.total > p.maxBytes && len(p.files) > 0 {
		f := p.files[0]
		p.files = slices.Delete(p.files, 0, 1)
		p.total -= f.Bytes
		if err := os.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("profiling: cannot delete old snapshot; the ring may exceed max_bytes", "path", f.Path, "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		p.log.Debug("profiling: pruned snapshot ring", "removed", removed, "files", len(p.files), "bytes", p.total, "max_bytes", p.maxBytes)
	}
	if len(p.files) == 0 && removed > 0 {
		p.log.Warn("profiling: one snapshot round is larger than max_bytes; nothing kept", "max_bytes", p.maxBytes)
	}
}

// scanDir indexes the snapshots in dir, oldest first. Other files are left
// alone; temp files and empty snapshots (both left by a crash) are removed.
func scanDir(dir string, log *slog.Logger) ([]SnapshotInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []SnapshotInfo
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		path := filepath.Join(dir, name)
		// A write that kill -9 cut short leaves its temp file: ours are
		// dot files (fsutil.WriteFile's temp names, and older versions').
		if strings.HasPrefix(name, ".") && strings.Contains(name, snapshotSuffix) || strings.HasPrefix(name, tmpPrefix) && strings.HasSuffix(name, tmpSuffix) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				log.Warn("profiling: cannot remove stale temp file", "path", path, "err", err)
			}
			continue
		}
		t, kind, ok := parseSnapshotName(name)
		if !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if fi.Size() == 0 {
			_ = os.Remove(path)
			continue
		}
		files = append(files, SnapshotInfo{Time: t, Kind: kind, Path: path, Bytes: fi.Size()})
	}
	slices.SortStableFunc(files, compareSnapshots)
	return files, nil
}

func parseSnapshotName(name string) (time.Time, string, bool) {
	base, ok := strings.CutSuffix(name, snapshotSuffix)
	if !ok {
		return time.Time{}, "", false
	}
	ts, kind, ok := strings.Cut(base, "-")
	if !ok || kind == "" || strings.IndexFunc(kind, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return time.Time{}, "", false
	}
	t, err := time.Parse(snapshotTimeLayout, ts)
	if err != nil {
		return time.Time{}, "", false
	}
	return t.UTC(), kind, true
}

func compareSnapshots(a, b SnapshotInfo) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)); c != 0 {
		return c
	}
	return strings.Compare(a.Path, b.Path)
}

func kindRank(k string) int {
	if i := slices.Index(kindOrder, k); i >= 0 {
		return i
	}
	return len(kindOrder)
}
