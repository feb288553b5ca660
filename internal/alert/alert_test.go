package alert_test

import (
	"testing"
	"time"

	"github.com/soakd/soakd/internal/alert"
)

func TestAlertKeyAndLabels(t *testing.T) {
	a := alert.Alert{Name: "SoakdFDLeak", Labels: map[string]string{"run_id": "r1", "severity": "critical", "alertname": "ignored", "empty": ""}}
	b := alert.Alert{Name: "SoakdFDLeak", Labels: map[string]string{"severity": "critical", "run_id": "r1"}}
	if got, want := a.Key(), `SoakdFDLeak{run_id="r1",severity="critical"}`; got != want {
		t.Errorf("Key = %s, want %s", got, want)
	}
	if a.Key() != b.Key() {
		t.Errorf("Key differs for the same identity: %s vs %s", a.Key(), b.Key())
	}
	c := alert.Alert{Name: "SoakdFDLeak", Labels: map[string]string{"severity": `crit",run_id="r1`}}
	if c.Key() == a.Key() {
		t.Errorf("Key is ambiguous: %s", c.Key())
	}
	ls := a.LabelSet()
	if ls["alertname"] != "SoakdFDLeak" || len(ls) != 3 {
		t.Errorf("LabelSet = %v", ls)
	}
	if !a.Firing() || a.Status() != "firing" {
		t.Errorf("zero EndsAt must be firing")
	}
	a.EndsAt = time.Now()
	if a.Firing() || a.Status() != "resolved" {
		t.Errorf("set EndsAt must be resolved")
	}
}

func TestSinkURLValidation(t *testing.T) {
	for _, u := range []string{"alertmanager:9093", "ftp://x/y", "", "http://"} {
		if _, err := alert.NewAlertmanagerSink(u, nil); err == nil {
			t.Errorf("NewAlertmanagerSink(%q): no error", u)
		}
		if _, err := alert.NewWebhookSink(u, nil); err == nil {
			t.Errorf("NewWebhookSink(%q): no error", u)
		}
	}
	if _, err := alert.NewAlertmanagerSink("http://127.0.0.1:9093/", nil); err != nil {
		t.Errorf("good URL: %v", err)
	}
}

func TestResendIsASinkProperty(t *testing.T) {
	am, _ := alert.NewAlertmanagerSink("http://127.0.0.1:9093", nil)
	hook, _ := alert.NewWebhookSink("http://127.0.0.1:9/x", nil)
	resends := func(s alert.Sink) bool {
		r, ok := s.(alert.Resender)
		return ok && r.Resend()
	}
	if !resends(am) || resends(hook) || resends(alert.NewLogSink(nil)) {
		t.Errorf("Resend: alertmanager %v webhook %v log %v; want true false false", resends(am), resends(hook), resends(alert.NewLogSink(nil)))
	}
	if !resends(alert.WithResend(hook, true)) || resends(alert.WithResend(am, false)) {
		t.Error("WithResend does not override the property")
	}
	if alert.WithResend(am, false).Name() != "alertmanager" {
		t.Error("WithResend changed the name")
	}
}
