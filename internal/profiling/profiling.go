package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/tick"
)

// Options configures a Profiler.
type Options struct {
	Config config.Profiling
	Dir    string            // <state-dir>/profiles: the snapshot ring
	RunID  string            // pushed as the run_id tag
	Tags   map[string]string // extra static tags for the push
	Clock  clockwork.Clock   // drives the snapshot ticker, snapshot names and the warning rate limit
	Logger *slog.Logger
	// StageLabel is the pprof label whose values the stage CPU sample
	// (profiling.stage_cpu) sums by; empty turns the sample off.
	StageLabel string
	// Metrics registers soakd_cpu_cores{stage}; nil registers nothing.
	Metrics prometheus.Registerer

	// uploadRate overrides pyroscope-go's upload period (15 s) in tests.
	uploadRate time.Duration
}

// Profiler runs the Pyroscope push (when profiling.pyroscope.server_address
// is set) and the local snapshot ring.
type Profiler struct {
	opts     Options
	clock    clockwork.Clock
	log      *slog.Logger
	dir      string
	interval time.Duration
	maxBytes int64
	kinds    []string

	// snapMu serialises snapshot rounds (the loop and SnapshotNow on alert)
	// and pruning. It is taken before mu.
	snapMu sync.Mutex

	mu      sync.Mutex
	files   []SnapshotInfo // the ring, oldest first
	total   int64          // sum of files[i].Bytes
	started bool
	stopped bool
	cancel  context.CancelFunc
	push    *pusher
	stage   StageCPU // the last stage CPU sample

	stageCores *prometheus.GaugeVec

	wg sync.WaitGroup

	// onRound, when set (tests), is called after every round of the loop.
	onRound func(error)
}

// New validates o, creates Dir and indexes the snapshots already in it
// (from earlier incarnations of the run), so Snapshots and the size bound
// count them. It starts nothing.
func New(o Options) (*Profiler, error) {
	if o.Dir == "" {
		return nil, errors.New("profiling: snapshot dir is empty")
	}
	iv := o.Config.Snapshots.Interval.Std()
	if iv <= 0 {
		return nil, fmt.Errorf("profiling: snapshots.interval must be > 0, got %s", iv)
	}
	mb := o.Config.Snapshots.MaxBytes.Bytes()
	if mb <= 0 {
		return nil, fmt.Errorf("profiling: snapshots.max_bytes must be > 0, got %d", mb)
	}
	if o.Config.Pyroscope.ServerAddress != "" && o.Config.Pyroscope.ApplicationName == "" {
		return nil, errors.New("profiling: pyroscope.application_name is empty")
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("profiling: %w", err)
	}
	p := &Profiler{
		opts:     o,
		clock:    o.Clock,
		log:      o.Logger,
		dir:      o.Dir,
		interval: iv,
		maxBytes: mb,
		kinds:    snapshotKinds(),
	}
	if o.Metrics != nil && p.stageInterval() > 0 {
		p.stageCores = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "soakd", Name: "cpu_cores",
			Help: "CPU of soakd by pprof stage label over the last stage CPU sample (profiling.stage_cpu), in cores; stage=\"\" is the runtime's own."},
			[]string{"stage"})
		if err := o.Metrics.Register(p.stageCores); err != nil {
			return nil, fmt.Errorf("profiling: %w", err)
		}
	}
	files, err := scanDir(o.Dir, p.log)
	if err != nil {
		return nil, fmt.Errorf("profiling: %w", err)
	}
	p.files = files
	for _, f := range files {
		p.total += f.Bytes
	}
	return p, nil
}

// Start prunes the ring to max_bytes (files left by earlier incarnations
// count), starts the Pyroscope push if a server address is configured, and
// starts the snapshot loop. The loop ends when ctx ends or on Stop. An
// unreachable Pyroscope server is not an error: uploads fail in the
// background and are reported by a rate-limited warning.
func (p *Profiler) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("profiling: already started")
	}
	p.started = true
	p.mu.Unlock()

	p.snapMu.Lock()
	p.prune()
	p.snapMu.Unlock()

	var push *pusher
	if p.opts.Config.Pyroscope.ServerAddress != "" {
		var err error
		push, err = startPusher(p.opts, p.clock, p.log)
		if err != nil {
			return fmt.Errorf("profiling: start pyroscope push to %s: %w", p.opts.Config.Pyroscope.ServerAddress, err)
		}
	}

	loopCtx, cancel := context.WithCancel(ctx)
	// The ticker exists before Start returns, so a fake clock advanced
	// right after Start fires it.
	t := p.clock.NewTicker(p.interval)
	p.mu.Lock()
	p.cancel = cancel
	p.push = push
	p.mu.Unlock()
	p.wg.Go(func() { p.loop(loopCtx, t) })
	if iv := p.stageInterval(); iv > 0 {
		st := p.clock.NewTicker(iv)
		p.wg.Go(func() { p.stageLoop(loopCtx, st, p.opts.Config.StageCPU.Duration.Std()) })
	}
	p.log.Info("profiling started", "snapshot_dir", p.dir, "snapshot_interval", p.interval,
		"snapshot_max_bytes", p.maxBytes, "snapshot_kinds", p.kinds,
		"pyroscope", p.opts.Config.Pyroscope.ServerAddress != "")
	return nil
}

// Stop ends the snapshot loop (a round in progress completes), then flushes
// the Pyroscope session's last partial period and waits for its uploads,
// for at most ctx's deadline; past it the uploads in flight are cancelled
// and Stop returns an error wrapping ctx's. Either way no goroutine of the
// Profiler is left running. Stop without Start, or a second Stop, is a no-op.
func (p *Profiler) Stop(ctx context.Context) error {
	p.mu.Lock()
	if !p.started || p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	cancel, push := p.cancel, p.push
	p.mu.Unlock()

	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
	if push == nil {
		return nil
	}
	if err := push.stop(ctx); err != nil {
		return fmt.Errorf("profiling: %w", err)
	}
	return nil
}

// stageInterval is how often the stage CPU sample runs (0: never).
func (p *Profiler) stageInterval() time.Duration {
	if p.opts.StageLabel == "" || p.opts.Config.StageCPU.Duration <= 0 {
		return 0
	}
	return p.opts.Config.StageCPU.Interval.Std()
}

func (p *Profiler) loop(ctx context.Context, t clockwork.Ticker) {
	tick.Loop(ctx.Done(), t, func(time.Time) {
		err := p.SnapshotNow()
		if err != nil {
			p.log.Warn("profiling: snapshot round failed", "err", err)
		}
		if p.onRound != nil {
			p.onRound(err)
		}
	})
}
