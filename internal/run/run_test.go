package run

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(journalChildEnv); path != "" {
		journalChild(path) // never returns: the parent kills it
	}
	goleak.VerifyTestMain(m)
}

func openRun(t *testing.T, dir string, clock clockwork.Clock, target time.Duration, mod ...func(*Options)) *Run {
	t.Helper()
	o := Options{StateDir: dir, Seed: 7, Target: target, CheckpointInterval: 5 * time.Second, ShutdownTimeout: time.Second, Clock: clock}
	for _, f := range mod {
		f(&o)
	}
	r, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// serve runs r.Serve in the background and returns a channel with its result.
func serve(r *Run, ctx context.Context, comps []components.Component, svcs ...Service) chan error {
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, comps, svcs...) }()
	return done
}

// advance moves the fake clock forward in 1 s steps, letting the run loop
// observe each step, until total has passed or done fires.
func advance(t *testing.T, clock *clockwork.FakeClock, total time.Duration, done chan error) {
	t.Helper()
	for passed := time.Duration(0); passed < total; passed += time.Second {
		select {
		case err := <-done:
			done <- err // leave it for the caller
			return
		default:
		}
		clock.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
	}
}

func waitReady(t *testing.T, r *Run) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !r.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("run never became ready")
		}
		time.Sleep(time.Millisecond)
	}
}

func eventTypes(t *testing.T, r *Run) []string {
	t.Helper()
	evs, err := ReadEvents(r.JournalPath(), 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

func TestResumeKeepsRunIDAndElapsed(t *testing.T) {
	dir := t.TempDir()
	clock := clockwork.NewFakeClock()
	r := openRun(t, dir, clock, time.Hour)
	if r.Resumed() {
		t.Fatal("new run reported as resumed")
	}
	first := r.State()
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(r, ctx, nil)
	waitReady(t, r)
	advance(t, clock, 12*time.Second, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}

	st, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Elapsed() < 12*time.Second {
		t.Fatalf("checkpointed elapsed %v, want >= 12s", st.Elapsed())
	}

	// Downtime between incarnations is not soak time.
	clock.Advance(time.Hour)
	r2 := openRun(t, dir, clock, time.Hour, func(o *Options) { o.Seed = 99 })
	s2 := r2.State()
	if s2.RunID != first.RunID || s2.Incarnation != 2 || s2.Seed != 7 {
		t.Fatalf("resumed state = %+v, want run id %s, incarnation 2, seed 7", s2, first.RunID)
	}
	if got := r2.Elapsed(); got != st.Elapsed() {
		t.Fatalf("resumed elapsed %v, want %v", got, st.Elapsed())
	}
	done = serve(r2, cancelledCtx(), nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	types := eventTypes(t, r2)
	want := []string{"run_started", "run_stopped", "run_resumed", "run_stopped"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("journal = %v, want %v", types, want)
	}
}

// killedCopy copies the state dir's files as a kill -9 of the running
// daemon would leave them: what has reached the kernel, no shutdown code.
func killedCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{stateFile, journalFile, tokenFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestResumeElapsedNeverGoesBack: the checkpoint is 4 s older than the
// last journaled event when the daemon is killed; the resumed run starts
// from the event's elapsed, not the checkpoint's.
func TestResumeElapsedNeverGoesBack(t *testing.T) {
	dir := t.TempDir()
	clock := clockwork.NewFakeClock()
	r := openRun(t, dir, clock, time.Hour)
	clock.Advance(3 * time.Second)
	if err := r.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Second)
	r.Event("fault_reverted", map[string]any{"id": "timeline-0", "why": "duration"})
	killed := killedCopy(t, dir)
	<-serve(r, cancelledCtx(), nil)

	if st, err := ReadState(killed); err != nil || st.Elapsed() != 3*time.Second {
		t.Fatalf("checkpoint at the kill = %+v, %v; want 3s", st, err)
	}
	r2 := openRun(t, killed, clock, time.Hour)
	defer func() { <-serve(r2, cancelledCtx(), nil) }()
	evs, err := ReadEvents(r2.JournalPath(), 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if el := secondsToDuration(e.ElapsedSeconds); el > r2.Elapsed() {
			t.Fatalf("resumed at %v, before the journaled %s at %v", r2.Elapsed(), e.Type, el)
		}
	}
	if got := r2.Elapsed(); got != 7*time.Second {
		t.Fatalf("resumed elapsed %v, want 7s (the last journaled event)", got)
	}
	if st, err := ReadState(killed); err != nil || st.Elapsed() != 7*time.Second {
		t.Fatalf("checkpoint after resume = %+v, %v; want 7s", st, err)
	}
}

func cancelledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestPeriodicCheckpoint(t *testing.T) {
	dir := t.TempDir()
	clock := clockwork.NewFakeClock()
	r := openRun(t, dir, clock, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(r, ctx, nil)
	waitReady(t, r)
	advance(t, clock, 7*time.Second, done)
	// No shutdown yet: the periodic checkpoint alone must have recorded progress.
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, err := ReadState(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Elapsed() >= 5*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("periodic checkpoint elapsed = %v, want >= 5s", st.Elapsed())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestCompletionAndFresh(t *testing.T) {
	dir := t.TempDir()
	clock := clockwork.NewFakeClock()
	r := openRun(t, dir, clock, 5*time.Second)
	done := serve(r, context.Background(), nil)
	waitReady(t, r)
	advance(t, clock, time.Minute, done)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not complete at its target")
	}
	id := r.State().RunID
	st, err := ReadState(dir)
	if err != nil || !st.Completed || st.Elapsed() < 5*time.Second {
		t.Fatalf("state after completion = %+v, %v", st, err)
	}
	if types := eventTypes(t, r); types[len(types)-1] != "run_completed" {
		t.Fatalf("last event %q, want run_completed", types[len(types)-1])
	}

	_, err = Open(Options{StateDir: dir, Target: time.Hour, Clock: clock})
	var ce *CompletedError
	if !errors.As(err, &ce) || ce.State.RunID != id {
		t.Fatalf("Open on completed run: %v, want CompletedError for %s", err, id)
	}
	if !strings.Contains(err.Error(), "--fresh") {
		t.Fatalf("error should tell how to start again: %v", err)
	}

	r3 := openRun(t, dir, clock, time.Hour, func(o *Options) { o.Fresh = true })
	if r3.State().RunID == id || r3.State().Incarnation != 1 {
		t.Fatalf("fresh run = %+v", r3.State())
	}
	old, err := ReadState(filepath.Join(dir, archiveDir, id))
	if err != nil || old.RunID != id || !old.Completed {
		t.Fatalf("archived run: %+v, %v", old, err)
	}
	if _, err := os.Stat(filepath.Join(dir, archiveDir, id, journalFile)); err != nil {
		t.Fatalf("archived journal: %v", err)
	}
	<-serve(r3, cancelledCtx(), nil)
}

// TestFreshArchiveIsCrashSafe fails the --fresh archive before each of its
// renames, as a crash there would, and restarts (with and without --fresh):
// the old run is either intact in the state dir or wholly archived, and a
// new run never journals onto the old run's journal.
func TestFreshArchiveIsCrashSafe(t *testing.T) {
	clock := clockwork.NewFakeClock()
	setup := func(t *testing.T) (dir, id string) {
		dir = t.TempDir()
		r := openRun(t, dir, clock, time.Hour)
		r.Event("old_marker", nil)
		for _, sub := range []string{"evidence", "profiles"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, sub, "data"), []byte(sub), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		<-serve(r, cancelledCtx(), nil)
		return dir, r.State().RunID
	}
	// oldData reports whether where holds all of the old run's data, and
	// whether it holds any of it.
	oldData := func(t *testing.T, where, id string) (all, any bool) {
		t.Helper()
		n := 0
		if st, err := ReadState(where); err == nil && st.RunID == id {
			n++
		}
		if evs, _ := ReadEvents(filepath.Join(where, journalFile), 0, 0, "old_marker"); len(evs) == 1 {
			n++
		}
		for _, sub := range []string{"evidence", "profiles"} {
			if _, err := os.Stat(filepath.Join(where, sub, "data")); err == nil {
				n++
			}
		}
		return n == 4, n > 0
	}
	const renames = 4 // evidence, journal.jsonl, profiles, run.json
	dir, _ := setup(t)
	var moved []string
	archiveHook = func(name string) error { moved = append(moved, name); return nil }
	r := openRun(t, dir, clock, time.Hour, func(o *Options) { o.Fresh = true })
	archiveHook = nil
	<-serve(r, cancelledCtx(), nil)
	if len(moved) != renames || moved[renames-1] != stateFile {
		t.Fatalf("archive renamed %v; want %d entries, run.json last", moved, renames)
	}
	for crashAt := range renames {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("crash_before_rename_%d/restart_fresh_%v", crashAt, fresh), func(t *testing.T) {
				dir, id := setup(t)
				calls := 0
				archiveHook = func(string) error {
					calls++
					if calls > crashAt {
						return errors.New("crash")
					}
					return nil
				}
				_, err := Open(Options{StateDir: dir, Target: time.Hour, Clock: clock, Fresh: true})
				archiveHook = nil
				if err == nil {
					t.Fatal("Open survived the injected crash")
				}
				r := openRun(t, dir, clock, time.Hour, func(o *Options) { o.Fresh = fresh })
				defer func() { <-serve(r, cancelledCtx(), nil) }()
				inDir, anyInDir := oldData(t, dir, id)
				inArchive, anyInArchive := oldData(t, filepath.Join(dir, archiveDir, id), id)
				switch {
				case r.State().RunID == id && inDir && !anyInArchive:
					// intact, resumed
				case r.State().RunID != id && inArchive && !anyInDir:
					// wholly archived, a new run started
				default:
					t.Fatalf("run %s (old %s): old data wholly in the state dir %v, in the archive %v; some in the state dir %v, in the archive %v",
						r.State().RunID, id, inDir, inArchive, anyInDir, anyInArchive)
				}
			})
		}
	}
}

func TestStateDirIsExclusiveAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	clock := clockwork.NewFakeClock()
	r := openRun(t, dir, clock, time.Hour)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if _, err := Open(Options{StateDir: dir, Target: time.Hour, Clock: clock}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want in-use error", err)
	}
	tok, err := ReadToken(dir)
	if err != nil || len(tok) != 64 || tok != r.Token() {
		t.Fatalf("token %q, %v", tok, err)
	}
	<-serve(r, cancelledCtx(), nil)
	// The lock is released when Serve returns.
	r2 := openRun(t, dir, clock, time.Hour)
	if r2.Token() != tok {
		t.Fatal("token changed across incarnations")
	}
	<-serve(r2, cancelledCtx(), nil)
}

func TestCorruptStateIsNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	garbage := []byte("{\"version\": 1, \"run_id\": ")
	if err := os.WriteFile(filepath.Join(dir, stateFile), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{StateDir: dir, Target: time.Hour, Clock: clockwork.NewFakeClock()})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Open on corrupt state = %v, want corrupt error", err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, stateFile))
	if string(got) != string(garbage) {
		t.Fatal("corrupt state was overwritten")
	}
}

type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

type fakeComponent struct {
	name string
	rec  *recorder
}

func (f fakeComponent) Name() string                { return f.name }
func (f fakeComponent) Start(context.Context) error { f.rec.add("start " + f.name); return nil }
func (f fakeComponent) Stop(context.Context) error  { f.rec.add("stop " + f.name); return nil }
func (f fakeComponent) Health() components.Health   { return components.Health{Healthy: true} }
func (f fakeComponent) Ops() []string               { return nil }
func (f fakeComponent) Do(context.Context, components.Op) components.Result {
	return components.Result{Outcome: components.OutcomeFailed}
}

func TestStartAndShutdownOrder(t *testing.T) {
	rec := &recorder{}
	svc := func(name string) Service {
		return Service{Name: name,
			Start: func(context.Context) error { rec.add("start " + name); return nil },
			Stop:  func(context.Context) error { rec.add("stop " + name); return nil }}
	}
	clock := clockwork.NewFakeClock()
	r := openRun(t, t.TempDir(), clock, time.Hour)
	comps := []components.Component{fakeComponent{"raft", rec}, fakeComponent{"pbft", rec}}
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(r, ctx, comps, svc("faults"), svc("load"))
	waitReady(t, r)
	if st := r.Snapshot(); st.Phase != PhaseRunning {
		t.Fatalf("status = %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "start raft,start pbft,start faults,start load,stop load,stop faults,stop pbft,stop raft"
	if got := strings.Join(rec.calls, ","); got != want {
		t.Fatalf("order:\n got %s\nwant %s", got, want)
	}
}

func TestFailedStartStopsWhatStarted(t *testing.T) {
	rec := &recorder{}
	clock := clockwork.NewFakeClock()
	r := openRun(t, t.TempDir(), clock, time.Hour)
	bad := Service{Name: "faults", Start: func(context.Context) error { return errors.New("boom") }}
	err := r.Serve(context.Background(), []components.Component{fakeComponent{"raft", rec}}, bad)
	if err == nil || !strings.Contains(err.Error(), "start faults: boom") {
		t.Fatalf("Serve = %v", err)
	}
	if got := strings.Join(rec.calls, ","); got != "start raft,stop raft" {
		t.Fatalf("calls = %s", got)
	}
	if types := eventTypes(t, r); !contains(types, "run_failed") {
		t.Fatalf("journal %v lacks run_failed", types)
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

type chanNotifier struct {
	interval time.Duration
	ch       chan string
}

func (n chanNotifier) Notify(s string) error {
	select {
	case n.ch <- s:
	default:
	}
	return nil
}
func (n chanNotifier) WatchdogInterval() time.Duration { return n.interval }

func TestWatchdogOnlyWhileHeartbeatFresh(t *testing.T) {
	clock := clockwork.NewFakeClock()
	n := chanNotifier{interval: 10 * time.Second, ch: make(chan string, 100)}
	var mu sync.Mutex
	beat := clock.Now()
	heartbeat := func() time.Time { mu.Lock(); defer mu.Unlock(); return beat }
	stale := make(chan time.Duration, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchdog(ctx, clock, 10*time.Second, 4*time.Second, heartbeat, n, func(a time.Duration) { stale <- a })
	}()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Fresh heartbeat: a ping every interval/2.
	for range 3 {
		mu.Lock()
		beat = clock.Now().Add(5 * time.Second)
		mu.Unlock()
		clock.Advance(5 * time.Second)
		select {
		case s := <-n.ch:
			if s != "WATCHDOG=1" {
				t.Fatalf("notify %q", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no watchdog ping while heartbeat fresh")
		}
	}
	// Stalled loop: the heartbeat stops moving, pings must stop.
	for range 3 {
		clock.Advance(5 * time.Second)
		select {
		case <-stale:
		case <-time.After(5 * time.Second):
			t.Fatal("stale heartbeat not reported")
		}
	}
	select {
	case s := <-n.ch:
		t.Fatalf("got %q with a stale heartbeat", s)
	default:
	}
	cancel()
	<-done
}

func TestServeNotifiesReadyAndStopping(t *testing.T) {
	clock := clockwork.NewFakeClock()
	n := chanNotifier{ch: make(chan string, 100)}
	r := openRun(t, t.TempDir(), clock, time.Hour, func(o *Options) { o.Notifier = n })
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(r, ctx, nil)
	waitReady(t, r)
	cancel()
	<-done
	close(n.ch)
	var got []string
	for s := range n.ch {
		got = append(got, strings.SplitN(s, "=", 2)[0])
	}
	joined := strings.Join(got, ",")
	for _, want := range []string{"READY", "STATUS", "STOPPING", "EXTEND_TIMEOUT_USEC"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("notifications %v lack %s", got, want)
		}
	}
	if strings.Index(joined, "READY") > strings.Index(joined, "STOPPING") {
		t.Fatalf("STOPPING before READY: %v", got)
	}
}

// TestCompletingTellsStoppingServices: a service's Stop learns whether the
// run reached its duration (nothing follows) or is only stopping (an
// incarnation will resume it).
func TestCompletingTellsStoppingServices(t *testing.T) {
	for _, complete := range []bool{false, true} {
		clock := clockwork.NewFakeClock()
		r := openRun(t, t.TempDir(), clock, 5*time.Second)
		var sawCompleting atomic.Int32
		svc := Service{Name: "probe", Start: func(context.Context) error { return nil },
			Stop: func(context.Context) error {
				if r.Completing() {
					sawCompleting.Store(1)
				} else {
					sawCompleting.Store(2)
				}
				return nil
			}}
		ctx, cancel := context.WithCancel(context.Background())
		done := serve(r, ctx, nil, svc)
		waitReady(t, r)
		if complete {
			advance(t, clock, time.Minute, done)
		} else {
			cancel()
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		cancel()
		if want := map[bool]int32{true: 1, false: 2}[complete]; sawCompleting.Load() != want {
			t.Fatalf("complete=%v: Stop saw Completing()=%v", complete, sawCompleting.Load() == 1)
		}
	}
}

// Each service starts under the pprof label stage=<its name> (pprof.Do
// sets it on the goroutine too, and goroutines inherit it): how a CPU
// profile splits soakd's own cost from the components'.
func TestServicesStartUnderTheirStageLabel(t *testing.T) {
	r := openRun(t, t.TempDir(), clockwork.NewFakeClock(), time.Hour)
	var got string
	svc := Service{Name: "load/raft", Start: func(ctx context.Context) error {
		got, _ = pprof.Label(ctx, StageLabel)
		return errors.New("stop here")
	}}
	_ = r.Serve(context.Background(), nil, svc)
	if got != "load/raft" {
		t.Fatalf("stage label %q, want load/raft", got)
	}
}

// labelProbe is a component whose Do reports the stage label it ran under.
type labelProbe struct {
	fakeComponent
	seen *string
}

func (p labelProbe) Do(ctx context.Context, _ components.Op) components.Result {
	*p.seen, _ = pprof.Label(ctx, StageLabel)
	return components.Result{Outcome: components.OutcomeOK}
}

// A component's Do called from the load stage runs as the component's
// stage, and the caller's context keeps its own label.
func TestStagedDoRunsUnderTheComponentStage(t *testing.T) {
	var seen string
	c := Staged(labelProbe{fakeComponent{name: "raft"}, &seen})
	pprof.Do(context.Background(), pprof.Labels(StageLabel, "load/raft"), func(ctx context.Context) {
		if res := c.Do(ctx, components.Op{Name: "get"}); res.Outcome != components.OutcomeOK {
			t.Fatalf("Do = %+v, want the component's result", res)
		}
		if after, _ := pprof.Label(ctx, StageLabel); after != "load/raft" {
			t.Fatalf("caller's label %q after Do, want load/raft", after)
		}
	})
	if seen != "component/raft" {
		t.Fatalf("Do ran under stage %q, want component/raft", seen)
	}
	if c.Name() != "raft" {
		t.Fatalf("Name = %q", c.Name())
	}
}

// Each incarnation writes the effective config to config.yaml and journals
// soakd's version and the config's digest with its start, so a report can
// say what ran and reproduce it.
func TestStartAndResumeRecordVersionAndConfig(t *testing.T) {
	dir := t.TempDir()
	clock := clockwork.NewFakeClock()
	for i, c := range []struct{ version, config string }{{"v1.0.0", "run: {seed: 7}\n"}, {"v1.0.1", "run: {seed: 8}\n"}} {
		r := openRun(t, dir, clock, time.Hour, func(o *Options) { o.Version, o.Config = c.version, []byte(c.config) })
		<-serve(r, cancelledCtx(), nil)
		got, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil || string(got) != c.config {
			t.Fatalf("incarnation %d: %s = %q, %v; want %q", i+1, ConfigFile, got, err, c.config)
		}
		typ := map[int]string{0: EventRunStarted, 1: EventRunResumed}[i]
		evs, err := ReadEvents(filepath.Join(dir, journalFile), 0, 100, typ)
		if err != nil || len(evs) != 1 {
			t.Fatalf("incarnation %d: %d %s events, %v", i+1, len(evs), typ, err)
		}
		f := evs[0].Fields
		if f["version"] != c.version || f["config_sha256"] != fmt.Sprintf("%x", sha256.Sum256([]byte(c.config))) {
			t.Fatalf("incarnation %d: %s fields %v, want version %s and the config's digest", i+1, typ, f, c.version)
		}
	}
}
