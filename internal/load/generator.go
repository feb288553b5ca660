package load

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/tick"
)

// Options configures one component's generator.
type Options struct {
	Component components.Component
	Load      config.RateLoad
	Seed      uint64
	Clock     clockwork.Clock
	// Elapsed is the run's soak time: the schedule (ramp, diurnal phase)
	// is laid on it, so a resumed run continues where it was.
	Elapsed func() time.Duration
	Metrics *Metrics
	Tracer  trace.Tracer
	Logger  *slog.Logger
	// OpTimeout bounds each operation (0: components.DefaultOpTimeout).
	OpTimeout time.Duration
}

// rateWindow is how far back achieved and scheduled rates look.
const rateWindow = 60

// minSleep is the shortest wait the dispatcher sleeps for; arrivals due
// sooner are started at once (late by less than this, and their latency
// still counts from the intended time).
const minSleep = 500 * time.Microsecond

// Generator drives one component open-loop.
type Generator struct {
	o       Options
	name    string
	prof    Profile
	ops     *opPicker
	keys    *keyPicker
	rng     *rand.Rand
	cap     int
	jobs    chan job
	paused  atomic.Bool
	running atomic.Int64 // queued to a worker or executing

	// lastValue is the last value each key was written with, so a cas has
	// a fair chance to match; bounded by load.<c>.keys.
	valMu     sync.Mutex
	lastValue [][]byte
	seq       atomic.Uint64

	histMu sync.Mutex
	hist   map[string]*hdrhistogram.Histogram
	// lag is how late ops start against their intended time: the engine's
	// own scheduling error, separate from the component's latency.
	lag *hdrhistogram.Histogram

	// Per-second counts over the last minute: scheduled arrivals and
	// started ops (dropped = scheduled − started while not paused).
	secMu     sync.Mutex
	started   [rateWindow]int64
	scheduled [rateWindow]int64
	sec       int64 // index of the current second since Start
	filled    int

	totalScheduled, totalStarted, totalDropped atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type job struct {
	intended time.Time
	op       components.Op
}

// New builds a generator; the op mix must only name ops the component has.
func New(o Options) (*Generator, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("soakd/load")
	}
	if o.Metrics == nil {
		return nil, errors.New("load: nil metrics")
	}
	name := o.Component.Name()
	for op := range o.Load.Mix {
		if !slices.Contains(o.Component.Ops(), op) {
			return nil, fmt.Errorf("load.%s.mix.%s: component %s has no such op (has %v)", name, op, name, o.Component.Ops())
		}
	}
	ops, err := newOpPicker(o.Load.Mix)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(o.Seed, h.Sum64()))
	g := &Generator{
		o: o, name: name, ops: ops, rng: rng,
		prof: Profile{Rate: o.Load.Rate, RampUp: o.Load.RampUp.Std(), DiurnalAmplitude: o.Load.Diurnal.Amplitude.Fraction()},
		keys: newKeyPicker(o.Load.Keys, o.Load.KeyDist, rng),
		cap:  max(o.Load.MaxInFlight, 1),
		hist: map[string]*hdrhistogram.Histogram{},
		lag:  hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3),
	}
	// Every series exists from the start, so dashboards and rules never
	// query a metric that appears only after the first drop.
	o.Metrics.dropped.WithLabelValues(name)
	o.Metrics.below.WithLabelValues(name).Set(0)
	g.lastValue = make([][]byte, o.Load.Keys)
	for _, op := range ops.names {
		// 1 µs .. 5 min at 3 significant digits: fixed memory per op.
		g.hist[op] = hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
	}
	return g, nil
}

// Name is the component the generator drives.
func (g *Generator) Name() string { return g.name }

// Start launches the workers and the dispatcher.
func (g *Generator) Start(ctx context.Context) error {
	ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	g.jobs = make(chan job, g.cap) // never fuller than the in-flight cap
	for i := range g.cap {
		g.wg.Go(func() { g.worker(ctx, i) })
	}
	g.wg.Go(func() { g.dispatch(ctx) })
	g.wg.Go(func() { g.rates(ctx) })
	return nil
}

// Stop stops new arrivals and waits for in-flight ops (each bounded by its
// own timeout) until ctx ends.
func (g *Generator) Stop(ctx context.Context) error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load %s: %d ops still in flight: %w", g.name, g.running.Load(), ctx.Err())
	}
}

// Pause stops starting arrivals (they are skipped, not dropped); Resume
// picks the schedule up at the current time.
func (g *Generator) Pause()  { g.paused.Store(true) }
func (g *Generator) Resume() { g.paused.Store(false) }

func (g *Generator) dispatch(ctx context.Context) {
	clock := g.o.Clock
	wall0, el0 := clock.Now(), g.o.Elapsed()
	arr := NewArrivals(g.prof, g.o.Load.Arrivals != "uniform", g.rng, el0)
	timer := clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		intended := wall0.Add(arr.Next() - el0)
		if d := intended.Sub(clock.Now()); d >= minSleep {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.Chan():
			}
		} else if ctx.Err() != nil {
			return
		}
		if g.paused.Load() {
			continue
		}
		g.countScheduled()
		if g.running.Load() >= int64(g.cap) {
			g.totalDropped.Add(1)
			g.o.Metrics.dropped.WithLabelValues(g.name).Inc()
			continue
		}
		g.running.Add(1)
		g.countStarted()
		g.jobs <- job{intended: intended, op: g.nextOp()} // cannot block: running < cap = buffer
	}
}

func (g *Generator) nextOp() components.Op {
	name := g.ops.pick(g.rng)
	k := g.keys.pick(g.rng)
	op := components.Op{Name: name, Key: "k" + strconv.Itoa(k)}
	switch name {
	case "put", "cas":
		// Unique values let the checker tell every write apart.
		op.Value = strconv.AppendUint([]byte("v"), g.seq.Add(1), 36)
		if name == "cas" {
			g.valMu.Lock()
			op.Expect = g.lastValue[k]
			g.valMu.Unlock()
		}
	}
	return op
}

func (g *Generator) worker(ctx context.Context, id int) {
	// Each worker is one client: its ops are sequential, which is what
	// the history checkers assume of a client.
	ctx = components.WithClientID(ctx, id)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-g.jobs:
			if ctx.Err() == nil { // stopping: start nothing new
				g.run(ctx, j)
			}
			g.running.Add(-1)
		}
	}
}

func (g *Generator) run(ctx context.Context, j job) {
	ctx, span := g.o.Tracer.Start(ctx, g.name+"."+j.op.Name, trace.WithTimestamp(j.intended),
		trace.WithAttributes(attribute.String("soakd.component", g.name), attribute.String("soakd.op", j.op.Name)))
	// An op in flight at Stop runs to its own end: cancelling it would
	// record a failure the system under soak did not have.
	timeout := g.o.OpTimeout
	if timeout <= 0 {
		timeout = components.DefaultOpTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	lag := g.o.Clock.Since(j.intended)
	res := g.o.Component.Do(ctx, j.op)
	cancel()
	lat := g.o.Clock.Since(j.intended)
	span.SetAttributes(attribute.String("soakd.outcome", string(res.Outcome)))
	span.End()

	if res.Outcome == components.OutcomeOK && (j.op.Name == "put" || (j.op.Name == "cas" && res.Swapped)) {
		if k, err := strconv.Atoi(j.op.Key[1:]); err == nil && k < len(g.lastValue) {
			g.valMu.Lock()
			g.lastValue[k] = j.op.Value
			g.valMu.Unlock()
		}
	}
	g.o.Metrics.ops.WithLabelValues(g.name, j.op.Name, string(res.Outcome)).Inc()
	g.o.Metrics.duration.WithLabelValues(g.name, j.op.Name).Observe(lat.Seconds())
	g.histMu.Lock()
	_ = g.hist[j.op.Name].RecordValue(max(lat.Microseconds(), 1))
	_ = g.lag.RecordValue(max(lag.Microseconds(), 1))
	g.histMu.Unlock()
}

func (g *Generator) countScheduled() {
	g.totalScheduled.Add(1)
	g.secMu.Lock()
	g.scheduled[g.sec%rateWindow]++
	g.secMu.Unlock()
}

func (g *Generator) countStarted() {
	g.totalStarted.Add(1)
	g.secMu.Lock()
	g.started[g.sec%rateWindow]++
	g.secMu.Unlock()
}

// rates rolls the per-second window and updates the rate gauges.
func (g *Generator) rates(ctx context.Context) {
	tick.Every(ctx.Done(), g.o.Clock, time.Second, func(time.Time) {
		g.secMu.Lock()
		var sched, start int64
		for i := range rateWindow {
			sched += g.scheduled[i]
			start += g.started[i]
		}
		g.filled = min(g.filled+1, rateWindow)
		n := float64(g.filled)
		g.sec++
		g.scheduled[g.sec%rateWindow], g.started[g.sec%rateWindow] = 0, 0
		full := g.filled == rateWindow
		g.secMu.Unlock()
		m := g.o.Metrics
		m.target.WithLabelValues(g.name).Set(g.prof.RateAt(g.o.Elapsed()))
		m.scheduled.WithLabelValues(g.name).Set(float64(sched) / n)
		m.achieved.WithLabelValues(g.name).Set(float64(start) / n)
		m.inFlight.WithLabelValues(g.name).Set(float64(g.running.Load()))
		below := 0.0
		if full && sched > 0 && float64(start) < 0.95*float64(sched) {
			below = 1
		}
		m.below.WithLabelValues(g.name).Set(below)
	})
}

// Stats is a generator's running totals and latency quantiles.
type Stats struct {
	Component  string               `json:"component"`
	TargetRate float64              `json:"target_ops_per_second"`
	Scheduled  int64                `json:"scheduled"`
	Started    int64                `json:"started"`
	Dropped    int64                `json:"dropped"`
	Latency    map[string]Quantiles `json:"latency"`
	// StartLag is how late ops started against their intended time.
	StartLag Quantiles `json:"start_lag"`
}

// Quantiles of one op's latency since start, from its HDR histogram.
type Quantiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P99   float64 `json:"p99_seconds"`
	P999  float64 `json:"p999_seconds"`
	Max   float64 `json:"max_seconds"`
}

// Stats returns the totals and quantiles so far.
func (g *Generator) Stats() Stats {
	s := Stats{Component: g.name, TargetRate: g.prof.RateAt(g.o.Elapsed()), Scheduled: g.totalScheduled.Load(),
		Started: g.totalStarted.Load(), Dropped: g.totalDropped.Load(), Latency: map[string]Quantiles{}}
	g.histMu.Lock()
	defer g.histMu.Unlock()
	for op, h := range g.hist {
		s.Latency[op] = quantiles(h)
	}
	s.StartLag = quantiles(g.lag)
	return s
}

func quantiles(h *hdrhistogram.Histogram) Quantiles {
	sec := func(us int64) float64 { return float64(us) / 1e6 }
	return Quantiles{Count: h.TotalCount(), P50: sec(h.ValueAtQuantile(50)), P99: sec(h.ValueAtQuantile(99)),
		P999: sec(h.ValueAtQuantile(99.9)), Max: sec(h.Max())}
}
