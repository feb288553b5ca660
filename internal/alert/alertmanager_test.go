package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/testutil"
)

// amtoolQuery runs `amtool alert query -o json` and returns the alerts;
// ok is false when amtool is not installed.
func amtoolQuery(t *testing.T, base string, matchers ...string) (alerts []testutil.GettableAlert, ok bool) {
	t.Helper()
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Log("amtool not found; skipping the amtool cross-check")
		return nil, false
	}
	args := append([]string{"--alertmanager.url=" + base, "alert", "query", "-o", "json"}, matchers...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, amtool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(out, &alerts); err != nil {
		t.Fatalf("amtool output %q: %v", out, err)
	}
	return alerts, true
}

func TestAlertmanagerIntegration(t *testing.T) {
	base := testutil.StartAlertmanager(t)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Timeout: 5 * time.Second, Transport: transport}

	sink, err := alert.NewAlertmanagerSink(base, client)
	if err != nil {
		t.Fatal(err)
	}
	var sent, failed atomic.Int64
	sentC := make(chan struct{}, 1024)
	const resend = 200 * time.Millisecond
	logs := &logBuffer{}
	d := alert.NewDispatcher(alert.DispatcherOptions{
		Sinks:          []alert.Sink{sink},
		Logger:         logs.logger(),
		ResendInterval: resend,
		MaxBackoff:     100 * time.Millisecond,
		OnSent:         func(string) { sent.Add(1); sentC <- struct{}{} },
		OnSendError:    func(string) { failed.Add(1) },
	})
	d.Start()
	defer stop(t, d)
	waitSent := func() {
		t.Helper()
		select {
		case <-sentC:
		case <-time.After(10 * time.Second):
			t.Fatalf("no successful send to Alertmanager within 10s; logs:\n%s", logs.String())
		}
	}

	runID := fmt.Sprintf("it-%d", time.Now().UnixNano())
	a := heapLeak(runID)
	a.StartsAt = time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	d.Notify(a)
	waitSent()

	alerts, raw := testutil.GetAlerts(t, client, base+"/api/v2/alerts")
	t.Logf("GET /api/v2/alerts after firing: %s", raw)
	got := testutil.FindAlert(alerts, "SoakdHeapLeak", runID)
	if got == nil {
		t.Fatalf("SoakdHeapLeak run_id=%s not in /api/v2/alerts: %s", runID, raw)
	}
	wantLabels := map[string]string{"alertname": "SoakdHeapLeak", "severity": "warning", "run_id": runID, "signal": "heap_live_bytes"}
	for k, v := range wantLabels {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
		}
	}
	for _, k := range []string{"summary", "description", "evidence"} {
		if got.Annotations[k] != a.Annotations[k] {
			t.Errorf("annotation %s = %q, want %q", k, got.Annotations[k], a.Annotations[k])
		}
	}
	if got.Status.State != "active" {
		t.Errorf("status.state = %q, want active", got.Status.State)
	}
	if !got.StartsAt.Equal(a.StartsAt) {
		t.Errorf("startsAt = %v, want %v", got.StartsAt, a.StartsAt)
	}
	if got.GeneratorURL != a.GeneratorURL {
		t.Errorf("generatorURL = %q, want %q", got.GeneratorURL, a.GeneratorURL)
	}
	// Firing alerts go without endsAt: Alertmanager sets now+resolve_timeout.
	if until := time.Until(got.EndsAt); until < 4*time.Minute || until > 6*time.Minute {
		t.Errorf("endsAt = %v (in %v), want about now+resolve_timeout (5m)", got.EndsAt, until)
	}

	if q, ok := amtoolQuery(t, base, "alertname=SoakdHeapLeak", "run_id="+runID); ok {
		if len(q) != 1 || q[0].Labels["signal"] != "heap_live_bytes" || q[0].Annotations["evidence"] != a.Annotations["evidence"] {
			t.Errorf("amtool alert query: %+v, want the one firing SoakdHeapLeak", q)
		} else {
			t.Logf("amtool alert query: %d alert, fingerprint %s, state %s", len(q), q[0].Fingerprint, q[0].Status.State)
		}
	}

	// While firing it is re-sent every ResendInterval, and Alertmanager
	// takes each one (updatedAt moves).
	waitSent()
	waitSent()
	alerts, _ = testutil.GetAlerts(t, client, base+"/api/v2/alerts")
	if re := testutil.FindAlert(alerts, "SoakdHeapLeak", runID); re == nil || !re.UpdatedAt.After(got.UpdatedAt) {
		t.Errorf("re-sent alert not updated in Alertmanager: before %v, after %+v", got.UpdatedAt, re)
	}

	// Resolve it.
	r := a
	r.EndsAt = time.Now()
	d.Notify(r)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if len(d.Active()) == 0 {
			active, raw := testutil.GetAlerts(t, client, base+"/api/v2/alerts?active=true")
			if testutil.FindAlert(active, "SoakdHeapLeak", runID) == nil {
				t.Logf("GET /api/v2/alerts?active=true after resolve: %s", raw)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert still active in Alertmanager 10s after resolve; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	all, raw := testutil.GetAlerts(t, client, base+"/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")
	if testutil.FindAlert(all, "SoakdHeapLeak", runID) != nil {
		t.Errorf("resolved alert still listed: %s", raw)
	}
	if q, ok := amtoolQuery(t, base, "alertname=SoakdHeapLeak", "run_id="+runID); ok && len(q) != 0 {
		t.Errorf("amtool still lists the resolved alert: %+v", q)
	}

	// Not re-sent after resolve: count successful sends over a few intervals.
	for len(sentC) > 0 {
		<-sentC
	}
	before := sent.Load()
	time.Sleep(4 * resend)
	if after := sent.Load(); after != before {
		t.Errorf("%d sends to Alertmanager after the alert was resolved, want 0", after-before)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d failed sends; logs:\n%s", n, logs.String())
	}
}

// The real Alertmanager rejects an invalid alert with 400; the sink's error
// carries the status and the body, and the dispatcher drops rather than
// retries it.
func TestAlertmanagerRejectsInvalid(t *testing.T) {
	base := testutil.StartAlertmanager(t)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	sink, err := alert.NewAlertmanagerSink(base+"/", &http.Client{Timeout: 5 * time.Second, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	bad := heapLeak("bad")
	bad.Labels["not-a-label-name"] = "x"
	bad.StartsAt = time.Now()
	err = sink.Send(context.Background(), []alert.Alert{bad})
	var se *alert.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Send = %v, want a *StatusError", err)
	}
	t.Logf("Alertmanager rejected the alert: %v", err)
	if se.StatusCode != http.StatusBadRequest || se.Retryable() {
		t.Errorf("status %d retryable %v, want 400 not retryable", se.StatusCode, se.Retryable())
	}
	if !strings.Contains(err.Error(), "400") || !strings.Contains(se.Body, "not-a-label-name") {
		t.Errorf("error %q lacks status or body snippet", err)
	}

	var errs atomic.Int64
	d := alert.NewDispatcher(alert.DispatcherOptions{
		Sinks:       []alert.Sink{sink},
		Logger:      (&logBuffer{}).logger(),
		OnSendError: func(string) { errs.Add(1) },
	})
	d.Start()
	d.Notify(bad)
	deadline := time.Now().Add(10 * time.Second)
	for d.Dropped("alertmanager") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop(t, d)
	if got := d.Dropped("alertmanager"); got != 1 || errs.Load() != 1 {
		t.Errorf("Dropped = %d, send errors = %d; want 1 and 1 (a 400 is not retried)", got, errs.Load())
	}
}
