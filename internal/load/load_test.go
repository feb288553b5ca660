package load

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRateProfile(t *testing.T) {
	p := Profile{Rate: 100, RampUp: time.Minute, DiurnalAmplitude: 0.3}
	if r := p.RateAt(0); math.Abs(r-10) > 1e-9 {
		t.Fatalf("rate at 0 = %v, want 10 (ramp floor)", r)
	}
	if r := p.RateAt(30 * time.Second); math.Abs(r-55*(1+0.3*math.Sin(2*math.Pi*30/86400))) > 1e-6 {
		t.Fatalf("rate mid-ramp = %v", r)
	}
	if r := p.RateAt(6 * time.Hour); math.Abs(r-130) > 1e-6 {
		t.Fatalf("diurnal peak = %v, want 130", r)
	}
	if r := p.RateAt(18 * time.Hour); math.Abs(r-70) > 1e-6 {
		t.Fatalf("diurnal trough = %v, want 70", r)
	}
}

func TestArrivalsPoissonMeanAndSeed(t *testing.T) {
	draw := func(seed uint64, from time.Duration, n int) []time.Duration {
		a := NewArrivals(Profile{Rate: 500}, true, rand.New(rand.NewPCG(seed, 1)), from)
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = a.Next()
		}
		return out
	}
	xs := draw(1, 0, 200_000)
	if rate := 200_000 / xs[len(xs)-1].Seconds(); math.Abs(rate-500)/500 > 0.01 {
		t.Fatalf("poisson rate %v, want 500 ± 1%%", rate)
	}
	ys := draw(1, 0, 1000)
	for i := range ys {
		if ys[i] != xs[i] {
			t.Fatal("same seed, different schedule")
		}
	}
	if zs := draw(2, 0, 10); zs[0] == xs[0] && zs[1] == xs[1] {
		t.Fatal("different seed, same schedule")
	}
	// A resumed run continues at its elapsed time.
	if r := draw(1, time.Hour, 1); r[0] <= time.Hour {
		t.Fatalf("resumed schedule starts at %v", r[0])
	}
	u := NewArrivals(Profile{Rate: 4}, false, rand.New(rand.NewPCG(1, 1)), 0)
	if a, b := u.Next(), u.Next(); a != 250*time.Millisecond || b != 500*time.Millisecond {
		t.Fatalf("uniform arrivals %v %v", a, b)
	}
}

func TestMixAndKeys(t *testing.T) {
	p, err := newOpPicker(map[string]float64{"put": 0.45, "get": 0.45, "cas": 0.10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	counts := map[string]int{}
	for range 100_000 {
		counts[p.pick(rng)]++
	}
	for op, w := range map[string]float64{"put": 0.45, "get": 0.45, "cas": 0.10} {
		if got := float64(counts[op]) / 100_000; math.Abs(got-w) > 0.01 {
			t.Fatalf("%s share %v, want %v", op, got, w)
		}
	}
	z := newKeyPicker(1000, "zipf", rng)
	hot := 0
	for range 10_000 {
		k := z.pick(rng)
		if k < 0 || k >= 1000 {
			t.Fatalf("key %d out of range", k)
		}
		if k < 10 {
			hot++
		}
	}
	if hot < 3000 { // uniform would put ~100 there
		t.Fatalf("zipf: %d of 10000 draws on the 10 hottest keys; want a skew", hot)
	}
}

// fakeKV is a component whose ops take delay.
type fakeKV struct {
	delay   time.Duration
	calls   atomic.Int64
	mu      sync.Mutex
	maxConc int
	conc    int
}

func (f *fakeKV) Name() string                { return "fake" }
func (f *fakeKV) Start(context.Context) error { return nil }
func (f *fakeKV) Stop(context.Context) error  { return nil }
func (f *fakeKV) Health() components.Health   { return components.Health{Healthy: true} }
func (f *fakeKV) Ops() []string               { return []string{"put", "get", "cas"} }
func (f *fakeKV) Do(ctx context.Context, op components.Op) components.Result {
	f.calls.Add(1)
	f.mu.Lock()
	f.conc++
	f.maxConc = max(f.maxConc, f.conc)
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	f.conc--
	f.mu.Unlock()
	return components.Result{Outcome: components.OutcomeOK}
}

func newGen(t testing.TB, c components.Component, rate float64, maxInFlight int) (*Generator, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g, err := New(Options{Component: c, Seed: 1, Metrics: m, Elapsed: func() time.Duration { return time.Hour + time.Since(start) },
		Load: config.RateLoad{Rate: rate, Mix: map[string]float64{"put": 1, "get": 1, "cas": 1}, Keys: 100,
			Arrivals: "poisson", KeyDist: "uniform", MaxInFlight: maxInFlight}})
	if err != nil {
		t.Fatal(err)
	}
	return g, reg
}

func TestInstantTargetGetsItsSchedule(t *testing.T) {
	c := &fakeKV{}
	g, reg := newGen(t, c, 2000, 1024)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := g.Stats()
	if s.Dropped != 0 || s.Started != s.Scheduled {
		t.Fatalf("instant target: scheduled %d started %d dropped %d", s.Scheduled, s.Started, s.Dropped)
	}
	if math.Abs(float64(s.Scheduled)-6000)/6000 > 0.1 {
		t.Fatalf("scheduled %d arrivals in 3 s at 2000/s", s.Scheduled)
	}
	if n := testutil.CollectAndCount(reg, "soakd_ops_total"); n < 3 {
		t.Fatalf("soakd_ops_total has %d series", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestSlowTargetIsOpenLoop(t *testing.T) {
	c := &fakeKV{delay: 200 * time.Millisecond}
	g, _ := newGen(t, c, 200, 10)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := g.Stats()
	// Arrivals keep their schedule whatever the target does.
	if math.Abs(float64(s.Scheduled)-600)/600 > 0.15 {
		t.Fatalf("scheduled %d in 3 s at 200/s: arrivals did not stay open-loop", s.Scheduled)
	}
	// 10 in flight × 200 ms each caps starts near 50/s; the rest are dropped.
	if s.Dropped < s.Scheduled/2 || s.Started+s.Dropped != s.Scheduled {
		t.Fatalf("scheduled %d started %d dropped %d", s.Scheduled, s.Started, s.Dropped)
	}
	if c.maxConc > 10 {
		t.Fatalf("in flight reached %d, cap 10", c.maxConc)
	}
	var p50 float64
	for _, q := range s.Latency {
		p50 = max(p50, q.P50)
	}
	if p50 < 0.2 {
		t.Fatalf("p50 latency %v s, want >= the 200 ms service time", p50)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Fatalf("heap grew %d bytes while dropping: something queues", grew)
	}
}

func TestLatencyCountsFromIntendedStart(t *testing.T) {
	// One worker, 50 ms per op, arrivals every 20 ms (uniform): each op
	// waits behind the previous one, and that wait is part of its latency.
	c := &fakeKV{delay: 50 * time.Millisecond}
	reg := prometheus.NewRegistry()
	m, _ := NewMetrics(reg)
	g, err := New(Options{Component: c, Seed: 1, Metrics: m, Elapsed: func() time.Duration { return time.Hour },
		Load: config.RateLoad{Rate: 50, Mix: map[string]float64{"get": 1}, Keys: 1, Arrivals: "uniform", MaxInFlight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_ = g.Start(context.Background())
	time.Sleep(time.Second)
	_ = g.Stop(context.Background())
	s := g.Stats()
	if s.Dropped == 0 {
		t.Fatal("expected drops with one slot and 50 ms ops at 50/s")
	}
	if q := s.Latency["get"]; q.P50 < 0.05 {
		t.Fatalf("p50 %v < service time", q.P50)
	}
}

func TestUnknownOpInMixIsAnError(t *testing.T) {
	m, _ := NewMetrics(prometheus.NewRegistry())
	_, err := New(Options{Component: &fakeKV{}, Metrics: m, Elapsed: func() time.Duration { return 0 },
		Load: config.RateLoad{Rate: 1, Mix: map[string]float64{"scan": 1}, Keys: 1, MaxInFlight: 1}})
	if err == nil || err.Error() != "load.fake.mix.scan: component fake has no such op (has [put get cas])" {
		t.Fatalf("err = %v", err)
	}
}

// TestArrivalsSlowerThanOneASecond: rates under one a second (a migration
// a minute) arrive at their rate; they used to recurse without end.
func TestArrivalsSlowerThanOneASecond(t *testing.T) {
	u := NewArrivals(Profile{Rate: 1.0 / 60}, false, rand.New(rand.NewPCG(1, 1)), 0)
	for i := 1; i <= 5; i++ {
		if got, want := u.Next(), time.Duration(i)*time.Minute; got < want-time.Millisecond || got > want+time.Millisecond {
			t.Fatalf("uniform arrival %d at %v, want %v", i, got, want)
		}
	}
	p := NewArrivals(Profile{Rate: 1.0 / 60}, true, rand.New(rand.NewPCG(1, 1)), 0)
	const n = 2000
	var last time.Duration
	for range n {
		last = p.Next()
	}
	if mean := last.Seconds() / n; mean < 54 || mean > 66 {
		t.Fatalf("poisson mean gap %.1fs, want about 60s", mean)
	}
}
