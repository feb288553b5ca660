package profiling

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/jonboulle/clockwork"
)

// diskSnapshots lists the *.pb.gz files in dir with their sizes.
func diskSnapshots(t *testing.T, dir string) (map[string]int64, int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	var total int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), snapshotSuffix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Join(dir, e.Name())] = fi.Size()
		total += fi.Size()
	}
	return files, total
}

// checkRing asserts the index matches the disk, is oldest first, and the
// disk total is within max.
func checkRing(t *testing.T, p *Profiler, max int64) []SnapshotInfo {
	t.Helper()
	snaps := p.Snapshots()
	disk, total := diskSnapshots(t, p.dir)
	if total > max {
		t.Fatalf("snapshots on disk total %d bytes > max_bytes %d", total, max)
	}
	if len(disk) != len(snaps) {
		t.Fatalf("index has %d files, disk %d", len(snaps), len(disk))
	}
	for i, s := range snaps {
		if size, ok := disk[s.Path]; !ok || size != s.Bytes {
			t.Fatalf("index entry %+v: on disk %v (size %d)", s, ok, size)
		}
		if i > 0 && s.Time.Before(snaps[i-1].Time) {
			t.Fatalf("Snapshots not oldest first: %v after %v", s.Time, snaps[i-1].Time)
		}
	}
	return snaps
}

func paths(snaps []SnapshotInfo) []string {
	var out []string
	for _, s := range snaps {
		out = append(out, s.Path)
	}
	return out
}

func roundBytes(t *testing.T) int64 {
	t.Helper()
	p, err := New(Options{Config: profilingConfig("", time.Minute, 1<<40), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SnapshotNow(); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range p.Snapshots() {
		n += s.Bytes
	}
	return n
}

func TestSnapshotRing(t *testing.T) {
	verifyNoLeaks(t)
	round := roundBytes(t)
	// Each file is smaller than a round, so at least 4 files always fit.
	maxBytes := 4 * round
	dir := t.TempDir()
	// A non-UTC clock: names must still be UTC.
	start := time.Date(2030, 1, 2, 5, 4, 5, 0, time.FixedZone("UTC+2", 2*3600))
	fc := clockwork.NewFakeClockAt(start)
	log, logs := newTestLogger()
	p, err := New(Options{Config: profilingConfig("", time.Minute, maxBytes), Dir: dir, Clock: fc, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rounds := make(chan error, 1)
	p.onRound = func(err error) { rounds <- err }
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	waitRound := func() {
		t.Helper()
		select {
		case err := <-rounds:
			if err != nil {
				t.Fatalf("round: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no snapshot round after advancing the clock")
		}
	}

	var written []string // every file ever in the ring, in write order
	const n = 12
	for i := 1; i <= n; i++ {
		fc.Advance(time.Minute)
		waitRound()
		snaps := checkRing(t, p, maxBytes)
		want := start.Add(time.Duration(i) * time.Minute).UTC()
		var kinds []string
		for _, s := range snaps {
			if !s.Time.Equal(want) {
				continue
			}
			kinds = append(kinds, s.Kind)
			written = append(written, s.Path)
		}
		if !slices.Equal(kinds, p.kinds) {
			t.Fatalf("round %d at %v wrote %v, want %v", i, want, kinds, p.kinds)
		}
		if i == 1 {
			if got := filepath.Base(snaps[0].Path); got != "20300102T030505.000Z-heap.pb.gz" {
				t.Fatalf("first file %q, want 20300102T030505.000Z-heap.pb.gz", got)
			}
		}
	}
	snaps := checkRing(t, p, maxBytes)
	kept := paths(snaps)
	if len(kept) < 3 {
		t.Fatalf("only %d files kept under max_bytes %d", len(kept), maxBytes)
	}
	if len(kept) >= len(written) {
		t.Fatalf("nothing pruned: %d files written, %d kept (bound %d)", len(written), len(kept), maxBytes)
	}
	if !slices.Equal(kept, written[len(written)-len(kept):]) {
		t.Fatalf("kept files are not the newest ones:\nkept    %v\nwritten %v", kept, written)
	}
	for _, s := range snaps {
		checkProfileFile(t, s)
	}
	if w := logs.lines("level=WARN"); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Restart on the same dir with a tighter bound: the files of the first
	// incarnation count; crash leftovers are cleaned; other files are kept.
	foreign := filepath.Join(dir, "notes.txt")
	stale := filepath.Join(dir, tmpPrefix+"123"+tmpSuffix)
	staleAtomic := filepath.Join(dir, ".20300102T000000.000Z-heap.pb.gz1234567") // a cut fsutil.WriteFile
	empty := filepath.Join(dir, "20300102T000000.000Z-heap.pb.gz")
	oldest := filepath.Join(dir, "20200101T000000.000Z-heap.pb.gz")
	for path, size := range map[string]int64{foreign: 7, stale: 100, staleAtomic: 100, empty: 0, oldest: round} {
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	maxBytes2 := 2 * round
	fc2 := clockwork.NewFakeClockAt(fc.Now())
	p2, err := New(Options{Config: profilingConfig("", time.Minute, maxBytes2), Dir: dir, Clock: fc2})
	if err != nil {
		t.Fatal(err)
	}
	got := paths(p2.Snapshots())
	if want := append([]string{oldest}, kept...); !slices.Equal(got, want) {
		t.Fatalf("after restart the index is\n%v\nwant\n%v", got, want)
	}
	for _, gone := range []string{stale, staleAtomic, empty} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", gone, err)
		}
	}
	rounds2 := make(chan error, 1)
	p2.onRound = func(err error) { rounds2 <- err }
	if err := p2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p2.Stop(context.Background()) })
	after := paths(checkRing(t, p2, maxBytes2)) // pruned at start
	if slices.Contains(after, oldest) || len(after) == 0 || !slices.Equal(after, kept[len(kept)-len(after):]) {
		t.Fatalf("start-up pruning kept %v; want a suffix of %v without %s", after, kept, oldest)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a file that is not a snapshot was touched: %v", err)
	}
	fc2.Advance(time.Minute)
	select {
	case err := <-rounds2:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no round after restart")
	}
	checkRing(t, p2, maxBytes2)
	// A round on alert at the same clock time replaces that round's files
	// (same names) instead of counting them twice.
	if err := p2.SnapshotNow(); err != nil {
		t.Fatal(err)
	}
	now := fc2.Now().UTC()
	var atNow []string
	for _, s := range checkRing(t, p2, maxBytes2) {
		if s.Time.Equal(now) {
			atNow = append(atNow, s.Kind)
		}
	}
	if !slices.Equal(atNow, p2.kinds) {
		t.Fatalf("after a second round at %v the ring holds %v for that time, want %v once each", now, atNow, p2.kinds)
	}
	if err := p2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func checkProfileFile(t *testing.T, s SnapshotInfo) {
	t.Helper()
	f, err := os.Open(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prof, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", s.Path, err)
	}
	var types []string
	for _, st := range prof.SampleType {
		types = append(types, st.Type)
	}
	switch s.Kind {
	case "heap":
		if !slices.Contains(types, "inuse_space") {
			t.Errorf("%s: sample types %v", s.Path, types)
		}
	case "allocs":
		if prof.DefaultSampleType != "alloc_space" {
			t.Errorf("%s: default sample type %q, want alloc_space", s.Path, prof.DefaultSampleType)
		}
	case "goroutine", "goroutineleak":
		if !slices.Contains(types, "goroutine") && !slices.Contains(types, "goroutineleak") {
			t.Errorf("%s: sample types %v", s.Path, types)
		}
	default:
		t.Errorf("%s: unexpected kind %q", s.Path, s.Kind)
	}
	if s.Kind == "goroutine" && len(prof.Sample) == 0 {
		t.Errorf("%s: no samples", s.Path)
	}
}

func TestNewValidates(t *testing.T) {
	noApp := profilingConfig("http://127.0.0.1:1", time.Minute, 1<<20)
	noApp.Pyroscope.ApplicationName = ""
	cases := map[string]Options{
		"empty dir":   {Config: profilingConfig("", time.Minute, 1<<20)},
		"zero period": {Config: profilingConfig("", 0, 1<<20), Dir: t.TempDir()},
		"zero bound":  {Config: profilingConfig("", time.Minute, 0), Dir: t.TempDir()},
		"no app name": {Config: noApp, Dir: t.TempDir()},
	}
	for name, o := range cases {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestParseSnapshotName(t *testing.T) {
	tm, kind, ok := parseSnapshotName("20300102T030505.123Z-goroutine.pb.gz")
	if !ok || kind != "goroutine" || !tm.Equal(time.Date(2030, 1, 2, 3, 5, 5, 123e6, time.UTC)) {
		t.Fatalf("got %v %q %v", tm, kind, ok)
	}
	for _, bad := range []string{"notes.txt", "x-heap.pb.gz", "20300102T030505.123Z-.pb.gz", "20300102T030505.123Z-Heap.pb.gz", "20300102T030505.123Z-heap.pb"} {
		if _, _, ok := parseSnapshotName(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
