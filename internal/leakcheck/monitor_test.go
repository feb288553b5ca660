package leakcheck

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/config"
)

const testInterval = 15 * time.Second

// testSignals is a synthetic process for Monitor.read: every signal flat
// with a little deterministic noise, goroutines growing by slope a reading.
type testSignals struct {
	n          int
	goroutines float64
	slope      float64
}

func (s *testSignals) read(now time.Time) (Reading, error) {
	s.n++
	s.goroutines += s.slope
	noise := float64(s.n % 3)
	return Reading{T: now, HeapLive: 50<<20 + noise*1024, HeapFresh: true, GCCycles: uint64(s.n), HeapObjects: 1000,
		Goroutines: s.goroutines + noise, FDs: 20 + noise, RSS: 100<<20 + noise*4096, Threads: 10 + noise}, nil
}

// newTestMonitor returns a monitor on a 5-minute window sampled every 15 s
// that fires and resolves on 2 verdicts, reading sig instead of the process.
func newTestMonitor(t *testing.T, o MonitorOptions) (*Monitor, *testSignals) {
	t.Helper()
	cfg := config.Default().LeakCheck
	cfg.Interval = config.Duration(testInterval)
	cfg.Window = config.Duration(5 * time.Minute)
	cfg.For = 2
	// A 5-minute window would take a 72-hour budget's share of a short
	// window; these tests judge the monitor's plumbing at a plain 0.99.
	cfg.Confidence, cfg.FalseAlarmBudget = 0.99, config.FalseAlarmBudget{}
	if o.Config.Thresholds != nil {
		cfg.Thresholds = o.Config.Thresholds
	}
	o.Config = cfg
	if o.EvidenceDir == "" {
		o.EvidenceDir = t.TempDir()
	}
	m, err := NewMonitor(o)
	if err != nil {
		t.Fatal(err)
	}
	sig := &testSignals{goroutines: 100}
	m.read = sig.read
	return m, sig
}

// Readings taken during run.warmup do not feed the residue tracker: a fault
// injected then has no level before it to compare with, rather than one that
// the warm-up growth makes read as residue.
func TestResidueIgnoresWarmupReadings(t *testing.T) {
	clock := clockwork.NewFakeClock()
	m, sig := newTestMonitor(t, MonitorOptions{Clock: clock, Warmup: 2 * time.Minute, ResidueSettle: 30 * time.Second})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(context.Background())
	now := clock.Now()
	tick := func(n int) {
		for range n {
			now = now.Add(testInterval)
			m.Tick(now)
		}
	}
	res := m.Residue()

	sig.slope = 10 // caches fill while warming up
	tick(6)        // 1m30s
	res.FaultInjected("w", "during-warmup")
	tick(2) // warm-up ends at 2m
	sig.slope = 0
	tick(2)
	res.FaultReverted("w", "during-warmup")
	tick(10) // settle plus a full level of readings

	res.FaultInjected("a", "after-warmup")
	tick(2)
	res.FaultReverted("a", "after-warmup")
	tick(10)

	got := res.Residues()
	if len(got) != 1 || got[0].Kind != "after-warmup" || got[0].Injections != 1 || got[0].WithResidue != 0 {
		t.Fatalf("residues = %+v, want only after-warmup, measured once, no residue", got)
	}
	if l := res.Leaky(); len(l) != 0 {
		t.Fatalf("leaky = %+v, want none: warm-up growth is not a fault's residue", l)
	}
}

// receiver is a webhook endpoint that keeps every alert it is sent; while
// down it answers 503.
type receiver struct {
	srv  *httptest.Server
	down atomic.Bool

	mu  sync.Mutex
	got []alert.WebhookAlert
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var p alert.WebhookPayload
		if err := json.NewDecoder(req.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, p.Alerts...)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// take returns what was received since the last take.
func (r *receiver) take() []alert.WebhookAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// amSink stands in for Alertmanager: a Resender that keeps what it is sent.
type amSink struct {
	mu  sync.Mutex
	got []alert.Alert
}

func (s *amSink) Name() string { return "alertmanager" }
func (s *amSink) Resend() bool { return true }
func (s *amSink) Send(_ context.Context, alerts []alert.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, alerts...)
	return nil
}

func (s *amSink) take() []alert.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

// incarnation is one soakd process: a dispatcher with a webhook and an
// Alertmanager sink, and the monitor that feeds it, on a fake clock.
type incarnation struct {
	m   *Monitor
	d   *alert.Dispatcher
	sig *testSignals
	now time.Time
	tr  *http.Transport
}

func startIncarnation(t *testing.T, at time.Time, hook *receiver, am *amSink, o MonitorOptions) *incarnation {
	t.Helper()
	clock := clockwork.NewFakeClockAt(at)
	tr := &http.Transport{}
	webhook, err := alert.NewWebhookSink(hook.srv.URL, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{webhook, am}, Clock: clock,
		Logger: slog.New(slog.DiscardHandler)})
	o.Clock, o.Notify, o.Restore, o.RunID = clock, d.Notify, d.Restore, "run-1"
	m, sig := newTestMonitor(t, o)
	d.Start()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &incarnation{m: m, d: d, sig: sig, now: at, tr: tr}
}

func (inc *incarnation) tick(n int) {
	for range n {
		inc.now = inc.now.Add(testInterval)
		inc.m.Tick(inc.now)
	}
}

// tickUntil ticks until cond holds, at most n times.
func (inc *incarnation) tickUntil(t *testing.T, n int, what string, cond func() bool) {
	t.Helper()
	for range n {
		inc.tick(1)
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %d ticks; %s", what, n, inc.m.Describe())
}

// stop stops the monitor and flushes the dispatcher; it reports whether
// everything queued was delivered.
func (inc *incarnation) stop(t *testing.T) bool {
	t.Helper()
	_ = inc.m.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := inc.d.Stop(ctx)
	inc.tr.CloseIdleConnections()
	return err == nil
}

// fireGoroutineLeak leaks goroutines until their alert fires.
func fireGoroutineLeak(t *testing.T, inc *incarnation) FiringAlert {
	t.Helper()
	inc.sig.slope = 15 // 60/min, threshold 10/min
	inc.tickUntil(t, 40, "goroutine leak alert", func() bool { return len(inc.m.Firing()) == 1 })
	return inc.m.Firing()[0]
}

func readState(t *testing.T, path string) []savedAlert {
	t.Helper()
	s, err := readAlertState(path)
	if err != nil {
		t.Fatal(err)
	}
	return s.Alerts
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// An alert firing when soakd dies is re-adopted by the next incarnation,
// which resolves it — same fingerprint and startsAt, without paging again —
// once its own detector has judged the signal clear.
// newAlertStateSetup gives a test of alerts across incarnations its state
// file, a webhook receiver, an Alertmanager stand-in and monitor options.
func newAlertStateSetup(t *testing.T) (string, *receiver, *amSink, MonitorOptions) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "leak-alerts.json")
	return state, newReceiver(t), &amSink{}, MonitorOptions{StatePath: state, EvidenceDir: filepath.Join(dir, "evidence")}
}

func TestLeakAlertFiringAtDeathResolvedByNextIncarnation(t *testing.T) {
	state, hook, am, o := newAlertStateSetup(t)

	one := startIncarnation(t, t0, hook, am, o)
	fired := fireGoroutineLeak(t, one)
	killed, err := os.ReadFile(state) // what a kill -9 now leaves on disk
	if err != nil {
		t.Fatal(err)
	}
	if s := readState(t, state); len(s) != 1 || s[0].Signal != SignalGoroutines || !s[0].EndsAt.IsZero() || !s[0].StartsAt.Equal(fired.Since) {
		t.Fatalf("state file = %+v, want the firing goroutine alert", s)
	}
	one.stop(t)
	if err := os.WriteFile(state, killed, 0o600); err != nil {
		t.Fatal(err)
	}
	sent := hook.take()
	if len(sent) != 1 || sent[0].Status != "firing" || sent[0].Labels["signal"] != SignalGoroutines {
		t.Fatalf("webhook got %+v, want the goroutine leak firing", sent)
	}
	page := sent[0]
	am.take()

	// Restarted ten minutes later; the restart freed the leak.
	o.Warmup = time.Minute
	two := startIncarnation(t, one.now.Add(10*time.Minute), hook, am, o)
	if f := two.m.Firing(); len(f) != 1 || !f[0].Since.Equal(fired.Since) || f[0].Evidence != fired.Evidence || f[0].Name != fired.Name {
		t.Fatalf("after restart Firing() = %+v, want %+v re-adopted", f, fired)
	}
	if v := testutil.ToFloat64(two.m.firing.WithLabelValues(SignalGoroutines)); v != 1 {
		t.Fatalf("soakd_leak_firing = %v after restart, want 1", v)
	}
	// No verdict during warm-up (4 ticks) and until the window is 80%
	// covered again (16 more): losing the data is not evidence.
	two.tick(19)
	if len(two.m.Firing()) != 1 {
		t.Fatalf("resolved without a verdict: %s", two.m.Describe())
	}
	two.tickUntil(t, 10, "resolution", func() bool { return len(two.m.Firing()) == 0 })
	if s := readState(t, state); len(s) != 1 || s[0].EndsAt.IsZero() {
		t.Fatalf("state file = %+v, want the resolution kept a while", s)
	}
	two.tick(int(resolvedKeep / testInterval))
	if s := readState(t, state); len(s) != 0 {
		t.Fatalf("state file = %+v, want empty once the resolution is old", s)
	}
	if !two.stop(t) {
		t.Fatal("undelivered alerts")
	}
	sent = hook.take()
	if len(sent) != 1 || sent[0].Status != "resolved" || sent[0].Fingerprint != page.Fingerprint || sent[0].StartsAt != page.StartsAt {
		t.Fatalf("webhook got %+v after restart, want only the resolution of %+v", sent, page)
	}
	got := am.take()
	if len(got) != 2 || !got[0].Firing() || !got[0].StartsAt.Equal(fired.Since) || got[1].Firing() || got[1].Key() != got[0].Key() {
		t.Fatalf("alertmanager got %+v, want the re-adopted alert, then its resolution", got)
	}

	three := startIncarnation(t, two.now.Add(time.Minute), hook, am, o)
	three.tick(2)
	three.stop(t)
	if len(three.m.Firing()) != 0 || hook.count() != 0 || len(am.take()) != 0 {
		t.Fatalf("third incarnation: firing %+v, webhook %+v", three.m.Firing(), hook.take())
	}
}

// An alert whose leak goes on across the restart stays the same alert: no
// second page, no second fire, same startsAt at Alertmanager.
func TestLeakAlertStillLeakingIsReadoptedNotRepaged(t *testing.T) {
	state, hook, am, o := newAlertStateSetup(t)

	one := startIncarnation(t, t0, hook, am, o)
	fired := fireGoroutineLeak(t, one)
	one.stop(t)
	hook.take()
	am.take()

	two := startIncarnation(t, one.now.Add(time.Minute), hook, am, o)
	two.sig.slope = 15
	two.tick(40) // the window refills with the leak: suspect verdicts
	var ev Evaluation
	for _, st := range two.m.signals {
		if st.name == SignalGoroutines {
			ev = st.last
		}
	}
	if ev.Signal != SignalGoroutines || !ev.Suspect {
		t.Fatalf("goroutines not judged leaking after restart: %+v", ev)
	}
	if f := two.m.Firing(); len(f) != 1 || !f[0].Since.Equal(fired.Since) {
		t.Fatalf("Firing() = %+v, want the alert since %v", f, fired.Since)
	}
	if n := testutil.ToFloat64(two.m.alerts.WithLabelValues(SignalGoroutines)); n != 0 {
		t.Fatalf("soakd_leak_alerts_total = %v in the second incarnation, want 0: the alert did not fire again", n)
	}
	if !two.stop(t) {
		t.Fatal("undelivered alerts")
	}
	if sent := hook.take(); len(sent) != 0 {
		t.Fatalf("webhook got %+v after restart, want nothing: a restart is not a new page", sent)
	}
	if got := am.take(); len(got) != 1 || !got[0].Firing() || !got[0].StartsAt.Equal(fired.Since) {
		t.Fatalf("alertmanager got %+v, want the alert re-sent firing since %v", got, fired.Since)
	}
	if s := readState(t, state); len(s) != 1 || !s[0].EndsAt.IsZero() || !s[0].StartsAt.Equal(fired.Since) {
		t.Fatalf("state file = %+v, want the alert still firing", s)
	}
}

// An alert nothing can evaluate any more (its threshold was removed) is
// resolved at start, with a note saying why.
func TestLeakAlertOfUnjudgedSignalResolvedAtRestart(t *testing.T) {
	state, hook, am, o := newAlertStateSetup(t)

	one := startIncarnation(t, t0, hook, am, o)
	fireGoroutineLeak(t, one)
	one.stop(t)
	page := hook.take()[0]

	o.Config.Thresholds = map[string]config.Rate{}
	for sig, th := range config.Default().LeakCheck.Thresholds {
		if sig != SignalGoroutines {
			o.Config.Thresholds[sig] = th
		}
	}
	two := startIncarnation(t, one.now.Add(time.Minute), hook, am, o)
	if f := two.m.Firing(); len(f) != 0 {
		t.Fatalf("Firing() = %+v, want none", f)
	}
	if !two.stop(t) {
		t.Fatal("undelivered alerts")
	}
	sent := hook.take()
	if len(sent) != 1 || sent[0].Status != "resolved" || sent[0].Fingerprint != page.Fingerprint ||
		!strings.Contains(sent[0].Annotations["description"], "no longer judged") {
		t.Fatalf("webhook got %+v, want the resolution with a note", sent)
	}
	if s := readState(t, state); len(s) != 0 {
		t.Fatalf("state file = %+v, want empty", s)
	}
}

// A resolution still undelivered when soakd dies (the receiver was down)
// is sent again by the next incarnation.
func TestLeakAlertResolutionUndeliveredAtDeathIsResent(t *testing.T) {
	state, hook, am, o := newAlertStateSetup(t)

	one := startIncarnation(t, t0, hook, am, o)
	fireGoroutineLeak(t, one)
	waitFor(t, "firing delivered", func() bool { return hook.count() == 1 })
	page := hook.take()[0]
	hook.down.Store(true)
	one.sig.slope = 0
	one.tickUntil(t, 20, "resolution", func() bool { return len(one.m.Firing()) == 0 })
	if one.stop(t) {
		t.Fatal("the resolution was delivered to a receiver that is down")
	}
	hook.down.Store(false)

	two := startIncarnation(t, one.now.Add(time.Minute), hook, am, o)
	if !two.stop(t) {
		t.Fatal("undelivered alerts")
	}
	sent := hook.take()
	if len(sent) != 1 || sent[0].Status != "resolved" || sent[0].Fingerprint != page.Fingerprint || sent[0].StartsAt != page.StartsAt {
		t.Fatalf("webhook got %+v, want the resolution of %+v", sent, page)
	}
	if s := readState(t, state); len(s) != 0 {
		t.Fatalf("state file = %+v, want empty", s)
	}
}

// TestLeakAlertResolvedWhenRunCompletes: no incarnation follows a completed
// run, so its firing alerts are resolved at the end, with the reason.
func TestLeakAlertResolvedWhenRunCompletes(t *testing.T) {
	state, hook, am, o := newAlertStateSetup(t)
	inc := startIncarnation(t, t0, hook, am, o)
	fireGoroutineLeak(t, inc)
	_ = inc.m.Stop(context.Background())
	inc.m.ResolveAll("the run completed")
	if f := inc.m.Firing(); len(f) != 0 {
		t.Fatalf("Firing() = %+v after ResolveAll", f)
	}
	if !inc.stop(t) {
		t.Fatal("undelivered alerts")
	}
	sent := hook.take()
	if len(sent) != 2 || sent[0].Status != "firing" || sent[1].Status != "resolved" || sent[1].Fingerprint != sent[0].Fingerprint ||
		!strings.Contains(sent[1].Annotations["description"], "the run completed") {
		t.Fatalf("webhook got %+v, want the page and its resolution", sent)
	}
	if s := readState(t, state); len(s) != 1 || s[0].alert().Firing() {
		t.Fatalf("state file = %+v, want the resolution only", s)
	}
}
