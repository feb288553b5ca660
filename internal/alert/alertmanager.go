package alert

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// amPostableAlert is one element of Alertmanager's API v2 postableAlerts.
type amPostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

type alertmanagerSink struct {
	client   *http.Client
	endpoint string
	shown    string
}

// NewAlertmanagerSink returns a sink that POSTs to {baseURL}/api/v2/alerts
// (baseURL may carry Alertmanager's --web.route-prefix). Firing alerts are
// sent without endsAt, so Alertmanager resolves them itself after its
// resolve_timeout unless they are re-sent: the sink is a Resender. A nil
// client means one with DefaultHTTPTimeout.
func NewAlertmanagerSink(baseURL string, client *http.Client) (Sink, error) {
	u, err := parseHTTPURL("alertmanager", baseURL)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/api/v2/alerts"
	u.RawPath = ""
	return &alertmanagerSink{client: defaultClient(client), endpoint: u.String(), shown: u.Redacted()}, nil
}

func (s *alertmanagerSink) Name() string { return "alertmanager" }

// Resend is true: Alertmanager needs firing alerts re-sent.
func (s *alertmanagerSink) Resend() bool { return true }

func (s *alertmanagerSink) Send(ctx context.Context, alerts []Alert) error {
	body := make([]amPostableAlert, 0, len(alerts))
	for _, a := range alerts {
		body = append(body, amPostableAlert{
			Labels:       a.LabelSet(),
			Annotations:  nonEmpty(a.Annotations),
			StartsAt:     rfc3339(a.StartsAt),
			EndsAt:       rfc3339(a.EndsAt),
			GeneratorURL: a.GeneratorURL,
		})
	}
	return postJSON(ctx, s.client, s.Name(), s.endpoint, s.shown, body)
}

// rfc3339 formats t in UTC, or "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// nonEmpty drops empty values (Alertmanager treats them as absent).
func nonEmpty(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != "" {
			out[k] = v
		}
	}
	return out
}
