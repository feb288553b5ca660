package alert_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/alert"
)

// A receiver that fails the first N requests with 500 gets the alert exactly
// once, after N retries spaced by the backoff on the injected clock.
func TestDispatcherRetriesWithBackoff(t *testing.T) {
	const failures = 5
	var requests, delivered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if requests.Add(1) <= failures {
			http.Error(w, "temporary failure", http.StatusInternalServerError)
			return
		}
		delivered.Add(1)
	}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	sink, err := alert.NewWebhookSink(srv.URL, &http.Client{Transport: transport})
	if err != nil {
		t.Fatal(err)
	}

	clock := clockwork.NewFakeClock()
	logs := &logBuffer{}
	errs := make(chan string, 100)
	sent := make(chan string, 100)
	const maxBackoff = 30 * time.Second
	d := alert.NewDispatcher(alert.DispatcherOptions{
		Sinks:       []alert.Sink{sink},
		Clock:       clock,
		Logger:      logs.logger(),
		MaxBackoff:  maxBackoff,
		OnSendError: func(s string) { errs <- s },
		OnSent:      func(s string) { sent <- s },
	})
	d.Start()
	defer stop(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	start := clock.Now()
	d.Notify(heapLeak("retry"))
	for i := range failures {
		select {
		case s := <-errs:
			if s != "webhook" {
				t.Fatalf("OnSendError(%q)", s)
			}
		case <-ctx.Done():
			t.Fatalf("failure %d not reported", i+1)
		}
		// The worker now waits for its backoff timer on the fake clock:
		// nothing is re-sent until the clock moves.
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if got := requests.Load(); got != int64(i+1) {
			t.Fatalf("%d requests before advancing the clock, want %d", got, i+1)
		}
		clock.Advance(maxBackoff)
	}
	select {
	case <-sent:
	case <-ctx.Done():
		t.Fatal("never delivered")
	}
	stop(t, d)
	if requests.Load() != failures+1 || delivered.Load() != 1 || len(errs) != 0 || len(sent) != 0 {
		t.Errorf("requests %d delivered %d extra errors %d extra sends %d; want %d, 1, 0, 0",
			requests.Load(), delivered.Load(), len(errs), len(sent), failures+1)
	}
	if d.Dropped("webhook") != 0 {
		t.Errorf("Dropped = %d", d.Dropped("webhook"))
	}

	// Failures at fake t=0,30s,60s,90s,120s with one log line per minute:
	// t=0, t=60s (1 suppressed), t=120s (1 suppressed); then one recovery.
	failed := logs.lines(t, "alert delivery failed; retrying")
	if len(failed) != 3 {
		t.Fatalf("%d failure log lines, want 3 (rate-limited to one a minute): %v", len(failed), failed)
	}
	for i, l := range failed {
		if want := float64(min(i, 1)); l["suppressed"] != want {
			t.Errorf("line %d suppressed = %v, want %v", i, l["suppressed"], want)
		}
		if e, _ := l["err"].(string); !strings.Contains(e, "500") || !strings.Contains(e, "temporary failure") {
			t.Errorf("line %d err %q lacks status and body", i, e)
		}
	}
	if rec := logs.lines(t, "alert sink recovered"); len(rec) != 1 || rec[0]["attempts"] != float64(failures+1) {
		t.Errorf("recovery lines %v", rec)
	}
	if el := clock.Since(start); el != failures*maxBackoff {
		t.Errorf("fake time elapsed %v", el)
	}
}

// Backoff waits grow, with jitter, and never exceed MaxBackoff.
func TestDispatcherBackoffIsCapped(t *testing.T) {
	clock := clockwork.NewFakeClock()
	const maxBackoff = 4 * time.Second
	const step = 50 * time.Millisecond
	attempts := make(chan time.Time, 100)
	s := sinkFunc{name: "flaky", send: func(ctx context.Context, _ []alert.Alert) error {
		attempts <- clock.Now()
		return errors.New("connection refused")
	}}
	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{s}, Clock: clock, Logger: (&logBuffer{}).logger(), MaxBackoff: maxBackoff})
	d.Start()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer scancel()
		if err := d.Stop(sctx); err == nil {
			t.Error("Stop with an undeliverable alert returned nil")
		}
	}()
	d.Notify(heapLeak("cap"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	times := []time.Time{<-attempts}
	for len(times) < 12 {
		// The worker is waiting on its backoff timer (the only waiter).
		// Step the clock; when the timer fires the worker sends, records
		// the time, and arms the next timer before BlockUntil returns.
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(step)
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-attempts:
			times = append(times, at)
		default:
		}
		if clock.Since(times[0]) > time.Hour {
			t.Fatal("no retry within an hour of fake time")
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		g := times[i].Sub(times[i-1])
		gaps = append(gaps, g)
		if g > maxBackoff || g <= 0 {
			t.Errorf("gap %d = %v, want in (0, %v]", i, g, maxBackoff)
		}
	}
	if gaps[len(gaps)-1] <= gaps[0] {
		t.Errorf("backoff did not grow: %v", gaps)
	}
	t.Logf("retry gaps on the fake clock (%v steps): %v", step, gaps)
}

// A sink that never answers does not slow Notify, does not hold up the other
// sinks, and keeps at most QueueSize entries, dropping the oldest.
func TestDispatcherDownSinkIsBounded(t *testing.T) {
	const queue = 16
	const n = 10 * queue
	down := newHungSink("down")
	good := newRecordingSink("good", false)
	d := alert.NewDispatcher(alert.DispatcherOptions{
		Sinks:     []alert.Sink{down, good},
		Clock:     clockwork.NewFakeClock(),
		Logger:    (&logBuffer{}).logger(),
		QueueSize: queue,
	})
	d.Start()
	var worst, total time.Duration
	for i := range n {
		a := heapLeak("down")
		a.Labels["n"] = fmt.Sprint(i)
		t0 := time.Now()
		d.Notify(a)
		el := time.Since(t0)
		total += el
		worst = max(worst, el)
		// The good sink keeps up with every change while "down" hangs.
		deadline := time.Now().Add(10 * time.Second)
		for good.alertCount() < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("good sink has %d of %d alerts; a down sink held it up", good.alertCount(), i+1)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	// A burst too, with no pause for the workers.
	for i := range n {
		a := heapLeak("burst")
		a.Labels["n"] = fmt.Sprint(i)
		t0 := time.Now()
		d.Notify(a)
		el := time.Since(t0)
		total += el
		worst = max(worst, el)
	}
	t.Logf("%d Notify calls: total %v, slowest %v", 2*n, total, worst)
	if worst > 100*time.Millisecond || total > time.Second {
		t.Errorf("Notify blocked: slowest %v, total %v", worst, total)
	}
	select {
	case <-down.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("down sink never called")
	}
	q, dropped := d.Queued("down"), d.Dropped("down")
	if q != queue {
		t.Errorf("Queued(down) = %d, want the cap %d", q, queue)
	}
	// Everything not queued or in the one in-flight batch was dropped.
	if inflight := 2*n - int64(q) - dropped; dropped <= 0 || inflight < 1 || inflight > alert.MaxBatch {
		t.Errorf("Dropped(down) = %d with %d queued of %d: in flight %d", dropped, q, 2*n, inflight)
	}
	if got := len(d.Active()); got != 2*n {
		t.Errorf("Active() = %d alerts, want %d", got, 2*n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := d.Stop(ctx)
	if el := time.Since(t0); el > 2*time.Second {
		t.Errorf("Stop took %v with a hung sink", el)
	}
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "down:") {
		t.Errorf("Stop = %v, want undelivered alerts of sink down and the deadline", err)
	}
	if good.alertCount() < n {
		t.Errorf("good sink got %d alerts, want >= %d", good.alertCount(), n)
	}
	if d.Dropped("good") != 0 && good.alertCount()+int(d.Dropped("good")) != 2*n {
		t.Errorf("good: %d delivered + %d dropped != %d", good.alertCount(), d.Dropped("good"), 2*n)
	}
	if got := d.Dropped("down"); got != 2*n {
		t.Errorf("after Stop Dropped(down) = %d, want all %d", got, 2*n)
	}
}

// Firing alerts are re-sent to a Resender every ResendInterval, and never
// after they resolve; a sink that is not a Resender gets state changes only.
func TestDispatcherResendsFiringAlerts(t *testing.T) {
	clock := clockwork.NewFakeClock()
	am := newRecordingSink("am", true)
	hook := newRecordingSink("hook", false)
	const every = time.Minute
	d := alert.NewDispatcher(alert.DispatcherOptions{
		Sinks:          []alert.Sink{am, hook},
		Clock:          clock,
		Logger:         (&logBuffer{}).logger(),
		ResendInterval: every,
	})
	d.Start()
	defer stop(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // am's resend ticker
		t.Fatal(err)
	}
	expect := func(what string, want alert.Alert, firing bool) {
		t.Helper()
		b := am.next(t)
		if len(b) != 1 || b[0].Key() != want.Key() || b[0].Firing() != firing {
			t.Fatalf("%s: am got %+v, want %s firing=%v", what, b, want.Key(), firing)
		}
	}

	a := heapLeak("resend")
	d.Notify(a)
	expect("state change", a, true)
	startsAt := d.Active()[0].StartsAt
	for i := range 3 {
		clock.Advance(every)
		expect(fmt.Sprintf("resend %d", i+1), a, true)
	}
	d.Notify(a) // same content again: not a state change
	r := a
	r.EndsAt = clock.Now()
	d.Notify(r)
	expect("resolve", a, false)
	if len(d.Active()) != 0 {
		t.Fatalf("Active after resolve: %v", d.Active())
	}

	// Another alert fires; the resends carry it alone, never the resolved one.
	g := alert.Alert{Name: "SoakdGoroutineLeak", Labels: map[string]string{"severity": "warning", "run_id": "resend", "signal": "goroutines"}}
	d.Notify(g)
	expect("second alert", g, true)
	for i := range 2 {
		clock.Advance(every)
		expect(fmt.Sprintf("second alert resend %d", i+1), g, true)
	}
	rg := g
	rg.EndsAt = clock.Now()
	d.Notify(rg)
	expect("second resolve", g, false)
	for range 3 {
		clock.Advance(every) // nothing is firing: nothing to re-send
	}
	stop(t, d)

	var got []string
	for _, b := range am.all() {
		for _, x := range b {
			got = append(got, x.Name+":"+x.Status())
			if x.Name == a.Name && !x.StartsAt.Equal(startsAt) {
				t.Errorf("startsAt changed: %v, want %v", x.StartsAt, startsAt)
			}
		}
	}
	want := "SoakdHeapLeak:firing SoakdHeapLeak:firing SoakdHeapLeak:firing SoakdHeapLeak:firing SoakdHeapLeak:resolved " +
		"SoakdGoroutineLeak:firing SoakdGoroutineLeak:firing SoakdGoroutineLeak:firing SoakdGoroutineLeak:resolved"
	if strings.Join(got, " ") != want {
		t.Errorf("am got\n  %s\nwant\n  %s", strings.Join(got, " "), want)
	}
	got = got[:0]
	for _, b := range hook.all() {
		for _, x := range b {
			got = append(got, x.Name+":"+x.Status())
		}
	}
	if want := "SoakdHeapLeak:firing SoakdHeapLeak:resolved SoakdGoroutineLeak:firing SoakdGoroutineLeak:resolved"; strings.Join(got, " ") != want {
		t.Errorf("hook got %s, want state changes only: %s", strings.Join(got, " "), want)
	}
}

// Stop flushes what is queued when the sinks work.
func TestDispatcherStopFlushes(t *testing.T) {
	rec := newRecordingSink("rec", false)
	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{rec}, Logger: (&logBuffer{}).logger()})
	for i := range 100 {
		a := heapLeak("flush")
		a.Labels["n"] = fmt.Sprint(i)
		d.Notify(a) // before Start: queued
	}
	d.Start()
	stop(t, d)
	if got := rec.alertCount(); got != 100 {
		t.Errorf("flushed %d of 100", got)
	}
	d.Notify(heapLeak("late")) // after Stop: ignored, no panic
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if got := rec.alertCount(); got != 100 {
		t.Errorf("Notify after Stop delivered: %d", got)
	}
}

// Stop with a cancelled context returns at once even while a sink hangs in
// Send, because Send's context is cancelled; no goroutine is left.
func TestDispatcherStopWithHungSink(t *testing.T) {
	before := goleak.IgnoreCurrent() // only this test's goroutines count
	hung := newHungSink("hung")
	ok := newRecordingSink("ok", true)
	d := alert.NewDispatcher(alert.DispatcherOptions{
		Sinks:  []alert.Sink{hung, ok},
		Clock:  clockwork.NewFakeClock(),
		Logger: (&logBuffer{}).logger(),
	})
	d.Start()
	d.Notify(heapLeak("hung"))
	<-hung.entered
	ok.next(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t0 := time.Now()
	err := d.Stop(ctx)
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Stop took %v", el)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "hung: 1") {
		t.Errorf("Stop = %v, want 1 undelivered for hung and context.Canceled", err)
	}
	if d.Dropped("hung") != 1 || d.Dropped("ok") != 0 {
		t.Errorf("Dropped hung=%d ok=%d", d.Dropped("hung"), d.Dropped("ok"))
	}
	goleak.VerifyNone(t, before)
}

// Stop cuts a backoff wait short to flush, then gives up when ctx ends.
func TestDispatcherStopRetriesOnceThenGivesUp(t *testing.T) {
	var attempts atomic.Int64
	s := sinkFunc{name: "refused", send: func(context.Context, []alert.Alert) error {
		attempts.Add(1)
		return errors.New("connection refused")
	}}
	clock := clockwork.NewFakeClock()
	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{s}, Clock: clock, Logger: (&logBuffer{}).logger()})
	d.Start()
	d.Notify(heapLeak("refused"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // first attempt failed, backing off
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	err := d.Stop(sctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v", err)
	}
	if got := attempts.Load(); got != 2 {
		t.Errorf("%d attempts, want 2 (first, then one at Stop)", got)
	}
}

func TestDispatcherDedupesAndNames(t *testing.T) {
	a1, a2 := newRecordingSink("x", false), newRecordingSink("x", false)
	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{a1, nil, a2}, Logger: (&logBuffer{}).logger()})
	if got := strings.Join(d.Sinks(), ","); got != "x,x#2" {
		t.Errorf("Sinks() = %s", got)
	}
	a := heapLeak("dedupe")
	d.Notify(a)
	d.Notify(a) // no state change
	a.Labels["severity"] = "critical"
	d.Notify(a)                                                // another alert
	d.Notify(alert.Alert{Labels: map[string]string{"x": "y"}}) // no name: ignored
	if got := len(d.Active()); got != 2 {
		t.Errorf("Active = %d, want 2", got)
	}
	d.Active()[0].Labels["run_id"] = "mutated"
	if d.Active()[0].Labels["run_id"] != "dedupe" {
		t.Error("Active returned shared maps")
	}
	d.Start()
	stop(t, d)
	if a1.alertCount() != 2 || a2.alertCount() != 2 {
		t.Errorf("deliveries %d, %d; want 2 each", a1.alertCount(), a2.alertCount())
	}
}

func TestDispatcherMaxActive(t *testing.T) {
	d := alert.NewDispatcher(alert.DispatcherOptions{MaxActive: 3, Logger: (&logBuffer{}).logger()})
	for i := range 10 {
		a := heapLeak("max")
		a.Labels["n"] = fmt.Sprint(i)
		d.Notify(a)
	}
	if got := len(d.Active()); got != 3 {
		t.Errorf("Active = %d, want MaxActive 3", got)
	}
	stop(t, d)
}

type sinkFunc struct {
	name string
	send func(context.Context, []alert.Alert) error
}

func (s sinkFunc) Name() string                                     { return s.name }
func (s sinkFunc) Send(ctx context.Context, as []alert.Alert) error { return s.send(ctx, as) }
