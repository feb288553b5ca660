package run

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fsutil"
)

// loopTick is the run loop's period: heartbeat, progress and completion.
const loopTick = time.Second

// Options configures Open.
type Options struct {
	StateDir string
	// Seed and the run id are fixed when a run starts; a resumed run keeps
	// the seed it started with, whatever the config says now.
	Seed               uint64
	Target             time.Duration
	CheckpointInterval time.Duration
	ShutdownTimeout    time.Duration
	// Fresh archives a previous run found in StateDir (to previous/<run-id>/)
	// and starts a new one, instead of resuming or refusing a completed run.
	Fresh    bool
	Clock    clockwork.Clock
	Logger   *slog.Logger
	Notifier Notifier
	// JournalMaxBytes caps the event journal (0: DefaultJournalMaxBytes).
	JournalMaxBytes int64
	// OnEvent observes every journaled event (metrics); OnDrop every event
	// the journal could not keep (full, or a write error).
	OnEvent func(Event)
	OnDrop  func()
	// Version is soakd's build, journaled with each start and resume so a
	// report can say what ran in every incarnation.
	Version string
	// Config is the effective configuration as YAML, written to
	// config.yaml in the state dir at each start and resume (a report
	// reproduces the run from it) and its digest journaled with the start.
	Config []byte
}

// Service is an engine the run starts after its components and stops
// before them: faults, then load, so load stops first at shutdown.
type Service struct {
	Name  string
	Start func(ctx context.Context) error
	Stop  func(ctx context.Context) error
}

// CompletedError is returned by Open for a state dir whose run has finished.
type CompletedError struct {
	Dir   string
	State State
}

func (e *CompletedError) Error() string {
	return fmt.Sprintf("run %s in %s is complete (%s of %s); use --fresh to archive it and start a new run",
		e.State.RunID, e.Dir, e.State.Elapsed().Round(time.Second), e.State.Target())
}

// Run is one soak run, opened on its state dir.
type Run struct {
	opts    Options
	dir     string
	clock   clockwork.Clock
	log     *slog.Logger
	notify  Notifier
	journal *Journal
	lock    *os.File
	token   string
	resumed bool

	mu             sync.Mutex
	state          State
	baseElapsed    time.Duration // checkpointed elapsed when this incarnation began
	incStart       time.Time
	phase          string
	lastCheckpoint time.Time
	checkpointErrs int64
	frozen         bool // stopped: elapsed no longer advances
	completing     bool // reached its duration: services are stopping for good

	heartbeat atomic.Int64 // unix nanos of the run loop's last iteration
}

// Phases of a run, reported in /api/v1/status.
const (
	PhaseStarting  = "starting"
	PhaseRunning   = "running"
	PhaseStopping  = "stopping"
	PhaseStopped   = "stopped"
	PhaseCompleted = "completed"
)

// Open prepares the state dir and either starts a new run or resumes the
// unfinished one found there. It takes an exclusive lock so two daemons never
// share a state dir.
func Open(o Options) (*Run, error) {
	if o.StateDir == "" {
		return nil, errors.New("run: empty state dir")
	}
	if o.Target <= 0 {
		return nil, errors.New("run: target duration must be > 0")
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notifier == nil {
		o.Notifier = nopNotifier{}
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 5 * time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	// The dir holds the bearer token: keep it private even if it existed.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	r := &Run{opts: o, dir: dir, clock: o.Clock, log: o.Logger, notify: o.Notifier, lock: lock, phase: PhaseStarting}
	if err := r.open(); err != nil {
		r.unlock()
		return nil, err
	}
	return r, nil
}

func (r *Run) open() error {
	prev, err := ReadState(r.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		// Never overwrite a state we cannot read: it may be the only record.
		return fmt.Errorf("%w (move it aside or use another --state-dir)", err)
	case r.opts.Fresh || r.archiveStarted(prev.RunID):
		// An archive interrupted by a crash is finished, whatever the
		// flags of the restart: it was asked for, and part of it is moved.
		if !r.opts.Fresh {
			r.log.Warn("finishing the archive of the previous run that a crash interrupted", "run_id", prev.RunID)
		}
		if err := r.archive(prev.RunID); err != nil {
			return err
		}
		prev = State{}
	case prev.Completed:
		return &CompletedError{Dir: r.dir, State: prev}
	}

	now := r.clock.Now()
	if prev.RunID != "" {
		r.resumed = true
		r.state = prev
		r.state.Incarnation++
		if prev.Seed != r.opts.Seed {
			r.log.Warn("resuming with the run's original seed; the configured seed applies to new runs only",
				"run_seed", prev.Seed, "configured_seed", r.opts.Seed)
		}
	} else {
		id, err := newRunID(now)
		if err != nil {
			return err
		}
		r.state = State{Version: stateVersion, RunID: id, Seed: r.opts.Seed, StartedAt: now.UTC(), Incarnation: 1}
	}
	r.state.TargetSeconds = r.opts.Target.Seconds()

	if r.token, err = ensureToken(r.dir); err != nil {
		return err
	}
	r.journal, err = OpenJournal(filepath.Join(r.dir, journalFile), JournalOptions{
		Clock: r.clock, Logger: r.log, MaxBytes: r.opts.JournalMaxBytes, OnAppend: r.opts.OnEvent, OnDrop: r.opts.OnDrop,
	})
	if err != nil {
		return err
	}
	// The checkpoint can be up to checkpoint_interval old after kill -9,
	// but every event journaled since carries a later elapsed: resuming
	// from the checkpoint would replay that stretch of the fault timeline
	// (and re-apply a fault reverted in it). Elapsed never goes back.
	if je := r.journal.MaxElapsed(); r.resumed && je > r.state.Elapsed() {
		r.log.Info("resuming from the journal's elapsed time, later than the checkpoint",
			"checkpoint", r.state.Elapsed(), "journal", je)
		r.state.ElapsedSeconds = je.Seconds()
	}
	r.baseElapsed = r.state.Elapsed()
	r.incStart = now
	r.heartbeat.Store(now.UnixNano())
	if err := r.checkpoint(); err != nil {
		_ = r.journal.Close()
		return err
	}
	start := map[string]any{"run_id": r.state.RunID, "seed": r.state.Seed, "target_seconds": r.state.TargetSeconds,
		"version": r.opts.Version}
	if r.opts.Config != nil {
		if err := fsutil.WriteBytes(filepath.Join(r.dir, ConfigFile), 0o600, r.opts.Config); err != nil {
			_ = r.journal.Close()
			return fmt.Errorf("write %s: %w", ConfigFile, err)
		}
		start["config_sha256"] = fmt.Sprintf("%x", sha256.Sum256(r.opts.Config))
	}
	if r.resumed {
		start["elapsed_seconds"] = r.baseElapsed.Seconds()
		r.Event(EventRunResumed, start)
		r.log.Info("resuming run", "run_id", r.state.RunID, "incarnation", r.state.Incarnation,
			"elapsed", r.baseElapsed.Round(time.Second), "target", r.opts.Target)
	} else {
		r.Event(EventRunStarted, start)
		r.log.Info("starting run", "run_id", r.state.RunID, "seed", r.state.Seed, "target", r.opts.Target, "state_dir", r.dir)
	}
	if err := r.journal.Sync(); err != nil {
		_ = r.journal.Close()
		return err
	}
	return nil
}

// archiveHook, when set (by tests), runs before each rename of archive and
// can fail it, leaving the state dir as a crash at that point would.
var archiveHook func(name string) error

// archiveStarted reports whether an archive of runID was begun: its
// previous/<run-id>/ exists while run.json still names the run.
func (r *Run) archiveStarted(runID string) bool {
	_, err := os.Stat(filepath.Join(r.dir, archiveDir, runID))
	return err == nil
}

// archive moves every entry of the state dir except the lock and token into
// previous/<run-id>/ so a fresh run starts clean and nothing is lost. run.json
// moves last: until it does, the state dir still names the old run and
// previous/<run-id>/ marks the archive as begun, so the next start finishes
// an archive a crash cut off (see open), and never resumes the old run
// without its data or starts a new run on the old run's journal.
func (r *Run) archive(runID string) error {
	parent := filepath.Join(r.dir, archiveDir)
	dst := filepath.Join(parent, runID)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("archive previous run: %w", err)
	}
	if err := fsutil.SyncDir(r.dir, parent); err != nil {
		return fmt.Errorf("archive previous run: %w", err)
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("archive previous run: %w", err)
	}
	move := func(name string) error {
		if archiveHook != nil {
			if err := archiveHook(name); err != nil {
				return err
			}
		}
		to := filepath.Join(dst, name)
		// rename replaces an existing file: never overwrite archived data.
		if _, err := os.Lstat(to); err == nil {
			return fmt.Errorf("%s already exists; move one of the two aside", to)
		}
		return os.Rename(filepath.Join(r.dir, name), to)
	}
	for _, e := range entries {
		switch e.Name() {
		case lockFile, archiveDir, tokenFile, stateFile:
			continue
		}
		if err := move(e.Name()); err != nil {
			return fmt.Errorf("archive previous run: %w", err)
		}
	}
	// The other moves must be durable before run.json's, which ends it.
	if err := fsutil.SyncDir(r.dir, dst); err != nil {
		return fmt.Errorf("archive previous run: %w", err)
	}
	if err := move(stateFile); err != nil {
		return fmt.Errorf("archive previous run: %w", err)
	}
	if err := fsutil.SyncDir(r.dir, dst); err != nil {
		return fmt.Errorf("archive previous run: %w", err)
	}
	r.log.Info("archived previous run", "run_id", runID, "to", dst)
	return nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		return nil, fmt.Errorf("state dir %s is in use by another soakd (pid %s)", dir, trimNewline(holder))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

func (r *Run) unlock() {
	if r.lock != nil {
		_ = syscall.Flock(int(r.lock.Fd()), syscall.LOCK_UN)
		_ = r.lock.Close()
		r.lock = nil
	}
}

// Dir returns the absolute state dir.
func (r *Run) Dir() string { return r.dir }

// Token returns the bearer token for mutating endpoints.
func (r *Run) Token() string { return r.token }

// JournalPath returns the path of the event journal.
func (r *Run) JournalPath() string { return filepath.Join(r.dir, journalFile) }

// Resumed reports whether this incarnation resumed an earlier one.
func (r *Run) Resumed() bool { return r.resumed }

// State returns a copy of the run state with the live elapsed time.
func (r *Run) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state
	s.ElapsedSeconds = r.elapsedLocked().Seconds()
	return s
}

// Elapsed returns the run's soak time so far.
func (r *Run) Elapsed() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.elapsedLocked()
}

func (r *Run) elapsedLocked() time.Duration {
	if r.state.Completed {
		return r.state.Elapsed()
	}
	if r.frozen {
		return r.baseElapsed
	}
	return r.baseElapsed + r.clock.Since(r.incStart)
}

// Event journals one event stamped with the run's incarnation and elapsed
// time. Journal errors are logged, not returned: losing an event must not
// stop a soak run.
func (r *Run) Event(typ string, fields map[string]any) {
	r.mu.Lock()
	inc, el := r.state.Incarnation, r.elapsedLocked()
	r.mu.Unlock()
	if err := r.journal.Append(typ, inc, el, fields); err != nil {
		r.log.Error("journal append failed", "type", typ, "err", err)
	}
}

// Checkpoint writes the run state to disk now. Once the run has stopped
// (its lock released, its final state written) it does nothing.
func (r *Run) Checkpoint() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase == PhaseStopped || r.phase == PhaseCompleted {
		return nil
	}
	return r.checkpoint()
}

func (r *Run) checkpoint() error {
	s := r.state
	s.ElapsedSeconds = r.elapsedLocked().Seconds()
	s.UpdatedAt = r.clock.Now().UTC()
	if err := writeState(r.dir, s); err != nil {
		r.checkpointErrs++
		return err
	}
	r.state.ElapsedSeconds = s.ElapsedSeconds
	r.lastCheckpoint = r.clock.Now()
	return nil
}

// CheckpointErrors counts failed checkpoint writes (a full disk, say).
func (r *Run) CheckpointErrors() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkpointErrs
}

// Heartbeat returns when the run loop last made progress.
func (r *Run) Heartbeat() time.Time { return time.Unix(0, r.heartbeat.Load()) }

// Ready reports whether the run is up and serving.
func (r *Run) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase == PhaseRunning
}

// StageLabel is the pprof label naming the part of soakd a goroutine works
// for: a service's name ("component/raft", "load/raft", "check/raft",
// "faults", "leakcheck", "profiling", "alerts"), "fabric" or "http".
const StageLabel = "stage"

// Staged returns c with each Do labelled stage=component/<name>: the load
// generator calls Do on its own goroutine, and without this the system
// under soak's work (a Raft Apply, a PBFT request's authentication, a
// whole migration) would count as the harness's load stage. The history
// the checkers record inside Do counts with the component (under 1% of
// a core at the default load).
func Staged(c components.Component) components.Component {
	return staged{c, pprof.Labels(StageLabel, "component/"+c.Name())}
}

type staged struct {
	components.Component
	labels pprof.LabelSet
}

func (s staged) Do(ctx context.Context, op components.Op) (res components.Result) {
	pprof.Do(ctx, s.labels, func(ctx context.Context) { res = s.Component.Do(ctx, op) })
	return res
}

// Serve starts the components in order, then the services, runs until ctx
// is done or the target duration is reached, then shuts down in order:
// services in reverse (load first, then faults), components in reverse,
// final checkpoint, journal. It returns nil on a clean stop or completion.
// Serve is called once; it releases the state dir lock when it returns.
func (r *Run) Serve(ctx context.Context, comps []components.Component, services ...Service) (err error) {
	defer r.unlock()
	all := make([]Service, 0, len(comps)+len(services))
	for _, c := range comps {
		all = append(all, Service{Name: "component/" + c.Name(), Start: c.Start, Stop: c.Stop})
	}
	all = append(all, services...)

	started := 0
	for _, s := range all {
		if ctx.Err() != nil {
			break
		}
		if s.Start != nil {
			// Goroutines a service starts carry its name as the pprof
			// label "stage", so a CPU profile tells what the harness
			// costs from what the components do.
			var serr error
			pprof.Do(ctx, pprof.Labels(StageLabel, s.Name), func(ctx context.Context) { serr = s.Start(ctx) })
			if serr != nil {
				err = fmt.Errorf("start %s: %w", s.Name, serr)
				r.Event(EventRunFailed, map[string]any{"stage": s.Name, "error": serr.Error()})
				break
			}
		}
		started++
	}

	completed := false
	if err == nil && ctx.Err() == nil {
		r.setPhase(PhaseRunning)
		_ = r.notify.Notify(daemon.SdNotifyReady)
		completed = r.loop(ctx)
	}
	r.mu.Lock()
	r.completing = completed
	r.mu.Unlock()
	r.shutdown(all[:started], completed, err)
	return err
}

// Completing reports, to a service's Stop, whether the run has reached its
// duration: no incarnation follows, so what a service would leave for the
// next one (a firing alert) must be finished now.
func (r *Run) Completing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.completing
}

func (r *Run) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

// loop ticks until ctx ends (false) or the run reaches its target (true).
func (r *Run) loop(ctx context.Context) bool {
	wdCtx, cancelWD := context.WithCancel(ctx)
	defer cancelWD()
	var wg sync.WaitGroup
	defer wg.Wait()
	if iv := r.notify.WatchdogInterval(); iv > 0 {
		maxAge := max(iv/2, 3*loopTick)
		wg.Go(func() {
			watchdog(wdCtx, r.clock, iv, maxAge, r.Heartbeat, r.notify, func(age time.Duration) {
				r.log.Error("run loop heartbeat is stale; withholding watchdog pings", "age", age)
			})
		})
	}

	t := r.clock.NewTicker(loopTick)
	defer t.Stop()
	r.tick()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.Chan():
			if r.tick() {
				return true
			}
		}
	}
}

// tick records a heartbeat, reports progress, checkpoints when due, and
// reports whether the run has reached its target.
func (r *Run) tick() bool {
	now := r.clock.Now()
	r.heartbeat.Store(now.UnixNano())
	r.mu.Lock()
	el := r.elapsedLocked()
	target := r.opts.Target
	due := now.Sub(r.lastCheckpoint) >= r.opts.CheckpointInterval
	var cerr error
	if due {
		cerr = r.checkpoint()
	}
	status := fmt.Sprintf("STATUS=run %s: %s of %s (%.1f%%), incarnation %d",
		r.state.RunID, el.Round(time.Second), target, 100*min(1, el.Seconds()/target.Seconds()), r.state.Incarnation)
	r.mu.Unlock()
	if cerr != nil {
		r.log.Error("checkpoint failed; will retry", "err", cerr)
	}
	_ = r.notify.Notify(status)
	return el >= target
}

func (r *Run) shutdown(started []Service, completed bool, startErr error) {
	r.setPhase(PhaseStopping)
	_ = r.notify.Notify(daemon.SdNotifyStopping)
	_ = r.notify.Notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (r.opts.ShutdownTimeout + 5*time.Second).Microseconds()))
	r.log.Info("shutting down", "completed", completed)

	// Shutdown gets its own deadline: the run's ctx is already cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.ShutdownTimeout)
	defer cancel()
	for i := len(started) - 1; i >= 0; i-- {
		s := started[i]
		if s.Stop == nil {
			continue
		}
		if err := s.Stop(ctx); err != nil {
			r.log.Error("stop failed", "stage", s.Name, "err", err)
			r.Event(EventStopFailed, map[string]any{"stage": s.Name, "error": err.Error()})
		}
	}

	r.mu.Lock()
	el := r.elapsedLocked()
	if completed {
		r.state.Completed = true
		r.state.CompletedAt = r.clock.Now().UTC()
		r.state.ElapsedSeconds = el.Seconds()
	}
	cerr := r.checkpoint()
	// Freeze elapsed at what was written: a stopped run's clock stops too.
	r.baseElapsed, r.incStart = el, r.clock.Now()
	r.frozen = true
	if completed {
		r.phase = PhaseCompleted
	} else {
		r.phase = PhaseStopped
	}
	r.mu.Unlock()
	if cerr != nil {
		r.log.Error("final checkpoint failed", "err", cerr)
	}
	switch {
	case completed:
		r.Event(EventRunCompleted, map[string]any{"elapsed_seconds": el.Seconds()})
		r.log.Info("run completed", "run_id", r.state.RunID, "elapsed", el.Round(time.Second))
	case startErr != nil:
	default:
		r.Event(EventRunStopped, map[string]any{"elapsed_seconds": el.Seconds()})
		r.log.Info("run stopped; start again to resume", "run_id", r.state.RunID, "elapsed", el.Round(time.Second))
	}
	if err := r.journal.Close(); err != nil {
		r.log.Error("journal close failed", "err", err)
	}
}
