package leak

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/tick"
)

// Hard caps, so a mistyped rate cannot take the host down with soakd.
const (
	MaxHeapBytes  = 2 << 30
	MaxGoroutines = 100_000
	MaxFDs        = 10_000
	// leakTick is how often the canary leaks its next slice: fine enough that
	// a 5 s sampler sees a smooth line.
	leakTick = 250 * time.Millisecond
	// stepSpan is how much growth a "step" leaks at once: one minute's worth.
	stepSpan = time.Minute
	// defaultPlateauAfter is how long a "plateau" grows before it flattens.
	defaultPlateauAfter = 30 * time.Second
)

// Resources is what the canary can leak.
var Resources = []string{"heap", "goroutines", "fds"}

// Spec is the "leak" fault kind. It is never drawn at random: a canary
// leaks on purpose at a rate the user states, and drawn at random it would
// only page people.
func Spec() faults.Spec {
	return faults.Spec{
		Name: "leak",
		Params: []faults.Param{
			{Name: "resource", Doc: "heap, goroutines or fds (required)"},
			{Name: "rate", Doc: "how fast, e.g. 2MiB/min or 20/min (required)"},
			{Name: "shape", Doc: "linear (default), step (a minute's worth at once) or plateau"},
			{Name: "plateau_after", Doc: "plateau only: how long it grows before it flattens (default 30s)"},
			{Name: "unreachable", Doc: "goroutines only: park where nothing can wake them (default false)"},
		},
		Check:     func(p map[string]string) error { _, err := parse(p); return err },
		NotRandom: "leak is a canary: put it in faults.timeline with its resource and rate",
		New: func(env faults.Env) (faults.Injector, error) {
			return &kind{clock: env.Clock, log: env.Logger}, nil
		},
	}
}

// kind injects canaries on the run's clock; the clock drives their pace.
type kind struct {
	clock clockwork.Clock
	log   *slog.Logger
}

type params struct {
	resource     string
	perSecond    float64
	shape        string
	plateauAfter time.Duration
	unreachable  bool
}

// parse reads a canary's parameters; every problem is a faults.ParamError,
// joined, so config validation names each field.
func parse(p map[string]string) (params, error) {
	var out params
	var errs []error
	bad := func(param, format string, args ...any) { errs = append(errs, faults.BadParam(param, format, args...)) }
	out.resource = p["resource"]
	switch {
	case out.resource == "":
		bad("resource", "required for kind leak (heap, goroutines or fds)")
	case !slices.Contains(Resources, out.resource):
		bad("resource", "must be heap, goroutines or fds, got %q", out.resource)
	}
	if rate, ok := p["rate"]; !ok {
		bad("rate", "required for kind leak (e.g. 2MiB/min)")
	} else if r, err := config.ParseRate(rate); err != nil {
		bad("rate", "%v", err)
	} else if out.perSecond = r.PerSecond(); out.perSecond <= 0 {
		bad("rate", "must be > 0")
	}
	out.shape = p["shape"]
	switch out.shape {
	case "":
		out.shape = "linear"
	case "linear", "step", "plateau":
	default:
		bad("shape", "%q is not linear, step or plateau", out.shape)
	}
	out.plateauAfter = defaultPlateauAfter
	if v := p["plateau_after"]; v != "" {
		d, err := config.ParseDuration(v)
		if err != nil || d <= 0 {
			bad("plateau_after", "%q is not a positive duration", v)
		}
		out.plateauAfter = d.Std()
	}
	if v := p["unreachable"]; v != "" {
		var err error
		if out.unreachable, err = strconv.ParseBool(v); err != nil {
			bad("unreachable", "%q is not true or false", v)
		}
		if out.unreachable && out.resource != "goroutines" {
			bad("unreachable", "only for resource goroutines")
		}
	}
	return out, errors.Join(errs...)
}

// Canary is what a leak fault's parameters say it leaks.
type Canary struct {
	Resource string
	Rate     string // as configured, e.g. "2MiB/min"
	// PerSecond is the rate in the resource's unit (bytes, goroutines,
	// descriptors) per second.
	PerSecond float64
	Shape     string // linear, step or plateau
}

// Describe reads a leak fault's parameters.
func Describe(p map[string]string) (Canary, error) {
	pp, err := parse(p)
	if err != nil {
		return Canary{}, err
	}
	return Canary{Resource: pp.resource, Rate: p["rate"], PerSecond: pp.perSecond, Shape: pp.shape}, nil
}

// Inject starts leaking; target is ignored (the canary lives in soakd).
func (k *kind) Inject(ctx context.Context, _ string, p map[string]string) (faults.Revert, error) {
	pp, err := parse(p)
	if err != nil {
		return nil, err
	}
	c := &canary{p: pp, clock: k.clock, log: k.log, stop: make(chan struct{}), done: make(chan struct{})}
	go pprof.Do(context.WithoutCancel(ctx), pprof.Labels("component", "canary"), func(context.Context) { c.loop() })
	var once sync.Once
	var revertErr error
	return func(context.Context) error {
		once.Do(func() { revertErr = c.free() })
		return revertErr
	}, nil
}

// canary holds everything it leaked so revert can free it.
type canary struct {
	p     params
	clock clockwork.Clock
	log   *slog.Logger

	mu     sync.Mutex
	heap   [][]byte
	bytes  int64
	parked []chan struct{}
	lost   int // unreachable goroutines: never freed
	fds    []*os.File
	owed   float64 // fractional units carried to the next tick
	capped bool

	stop chan struct{}
	done chan struct{}
}

func (c *canary) loop() {
	defer close(c.done)
	start := c.clock.Now()
	if c.p.shape == "step" {
		c.leak(c.p.perSecond * stepSpan.Seconds())
	}
	last := start
	tick.Every(c.stop, c.clock, leakTick, func(now time.Time) {
		dt := now.Sub(last).Seconds()
		last = now
		switch c.p.shape {
		case "linear":
			c.leak(c.p.perSecond * dt)
		case "plateau":
			if now.Sub(start) <= c.p.plateauAfter {
				c.leak(c.p.perSecond * dt)
			}
		}
	})
}

func (c *canary) leak(units float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owed += units
	n := int(c.owed)
	if n <= 0 {
		return
	}
	c.owed -= float64(n)
	switch c.p.resource {
	case "heap":
		if c.bytes+int64(n) > MaxHeapBytes {
			c.capOnce()
			return
		}
		c.heap = append(c.heap, leakHeap(n))
		c.bytes += int64(n)
	case "goroutines":
		for range n {
			if len(c.parked)+c.lost >= MaxGoroutines {
				c.capOnce()
				return
			}
			if c.p.unreachable {
				go parkUnreachable()
				c.lost++
				continue
			}
			ch := make(chan struct{})
			go parkForever(ch)
			c.parked = append(c.parked, ch)
		}
	case "fds":
		for range n {
			if len(c.fds) >= MaxFDs {
				c.capOnce()
				return
			}
			f, err := os.Open(os.DevNull)
			if err != nil {
				c.capOnce()
				c.log.Warn("leak canary cannot open more fds", "err", err)
				return
			}
			c.fds = append(c.fds, f)
		}
	}
}

func (c *canary) capOnce() {
	if !c.capped {
		c.capped = true
		c.log.Warn("leak canary reached its cap; holding", "resource", c.p.resource)
	}
}

// leakHeap allocates and touches n bytes. It is a named, non-inlined
// function so heap profiles attribute the growth to it.
//
//go:noinline
func leakHeap(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touch every page so RSS grows too
	}
	return b
}

// parkForever blocks until the canary closes ch.
//
//go:noinline
func parkForever(ch chan struct{}) { <-ch }

// parkUnreachable blocks on a channel nothing else can reach: a true leak.
//
//go:noinline
func parkUnreachable() {
	ch := make(chan struct{})
	<-ch
}

// free stops leaking and releases everything the canary holds.
func (c *canary) free() error {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.parked {
		close(ch)
	}
	var errs []error
	for _, f := range c.fds {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.lost > 0 {
		c.log.Warn("leak canary: unreachable goroutines stay leaked by design", "goroutines", c.lost)
	}
	c.heap, c.parked, c.fds, c.bytes = nil, nil, nil, 0
	runtime.GC() // hand the heap back now, so the resolve is visible promptly
	return errors.Join(errs...)
}
