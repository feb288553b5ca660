package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/tick"
)

// Recorder defaults.
const (
	DefaultInterval  = 10 * time.Second
	DefaultSaveEvery = time.Minute
	// warnEvery rate-limits the log of a failing gather or save.
	warnEvery = 10 * time.Minute
)

// RecorderOptions configure a Recorder; the embedded Options bound its
// History.
type RecorderOptions struct {
	Options
	Gatherer prometheus.Gatherer
	// Path is the history file; empty keeps the history in memory only.
	Path  string
	Clock clockwork.Clock
	// Elapsed is the run's soak time (continued across incarnations); nil
	// counts from NewRecorder on Clock.
	Elapsed func() time.Duration
	// Interval is how often the registry is gathered (DefaultInterval).
	Interval time.Duration
	// SaveEvery is how often the history is saved (DefaultSaveEvery); Stop
	// saves once more.
	SaveEvery time.Duration
	Logger    *slog.Logger
}

// Recorder is the shell around a History: it gathers the registry every
// Interval, observes it at the run's elapsed time, and saves the history
// every SaveEvery and on Stop. Start and Stop belong to one goroutine (the
// daemon's lifecycle); History and Save are safe from any.
type Recorder struct {
	o RecorderOptions

	saveMu   sync.Mutex // serializes Save
	mu       sync.Mutex // guards h, lastSave, lastWarn
	h        *History
	lastSave time.Time
	lastWarn time.Time

	cancel context.CancelFunc
	done   chan struct{}
	ticks  chan struct{} // tests: one value per finished tick, never blocks
}

// NewRecorder loads the history at o.Path. A history that already holds
// points belongs to an earlier incarnation of this run, so the new one is
// recorded as Restarted at o.Elapsed(). A corrupt file is an error: the
// caller decides whether to move it aside; it is never overwritten here.
func NewRecorder(o RecorderOptions) (*Recorder, error) {
	if o.Gatherer == nil {
		return nil, errors.New("history recorder: no gatherer")
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Elapsed == nil {
		start := o.Clock.Now()
		o.Elapsed = func() time.Duration { return o.Clock.Since(start) }
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.SaveEvery <= 0 {
		o.SaveEvery = DefaultSaveEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := New(o.Options)
	if o.Path != "" {
		var err error
		if h, err = Load(o.Path, o.Options); err != nil {
			return nil, err
		}
	}
	if h.Len() > 0 || len(h.incarnations) > 0 {
		h.Restarted(o.Elapsed())
	}
	return &Recorder{o: o, h: h, lastSave: o.Clock.Now(), ticks: make(chan struct{}, 1)}, nil
}

// Start takes a first sample now (the baselines of this incarnation's
// counters) and then one every Interval, in a goroutine Stop ends.
func (r *Recorder) Start(ctx context.Context) error {
	if r.done != nil {
		return errors.New("history recorder: already started")
	}
	r.sample()
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	t := r.o.Clock.NewTicker(r.o.Interval) // before the goroutine: a fake clock advanced next fires it
	go func() {
		defer close(r.done)
		tick.Loop(ctx.Done(), t, func(time.Time) { r.sample() })
	}()
	return nil
}

// sample gathers and observes once, and saves when SaveEvery has passed.
// Only the loop calls it, and Stop once the loop has ended: two gathers
// observed out of order would read as a counter reset.
func (r *Recorder) sample() {
	mfs, err := r.o.Gatherer.Gather()
	elapsed := r.o.Elapsed()
	r.mu.Lock()
	if err != nil {
		// A partial gather still holds the families that did gather.
		r.warnLocked("history: gather failed", err)
	}
	if err == nil || len(mfs) > 0 {
		r.h.Observe(elapsed, mfs)
	}
	due := r.o.Path != "" && r.o.Clock.Since(r.lastSave) >= r.o.SaveEvery
	r.mu.Unlock()
	if due {
		if err := r.Save(); err != nil {
			r.mu.Lock()
			r.warnLocked("history: save failed", err)
			r.mu.Unlock()
		}
	}
	select {
	case r.ticks <- struct{}{}:
	default:
	}
}

func (r *Recorder) warnLocked(msg string, err error) {
	if now := r.o.Clock.Now(); r.lastWarn.IsZero() || now.Sub(r.lastWarn) >= warnEvery {
		r.lastWarn = now
		r.o.Logger.Warn(msg, "path", r.o.Path, "err", err)
	}
}

// Save writes the history now. It is encoded under the lock (a consistent
// history; Observe waits milliseconds) and written and fsync'd outside it;
// saveMu keeps an older encoding from landing after a newer one.
func (r *Recorder) Save() error {
	if r.o.Path == "" {
		return nil
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	r.lastSave = r.o.Clock.Now()
	data, err := r.h.marshal()
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save history %s: %w", r.o.Path, err)
	}
	return writeFile(r.o.Path, data)
}

// Stop ends the loop, takes a last sample and saves. It returns ctx's
// error if the loop does not end in time, else the save's.
func (r *Recorder) Stop(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
		select {
		case <-r.done:
		case <-ctx.Done():
			return fmt.Errorf("history recorder: stop: %w", ctx.Err())
		}
		r.cancel = nil
		r.sample()
	}
	return r.Save()
}

// History returns a copy of the history, safe to read while recording
// goes on.
func (r *Recorder) History() *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h.Clone()
}
