package alert

import (
	"context"
	"net/http"
)

// WebhookVersion is the "version" of the webhook payload (see the package
// documentation for the schema).
const WebhookVersion = "1"

// WebhookPayload is the JSON document the webhook sink POSTs.
type WebhookPayload struct {
	Version string         `json:"version"`
	Status  string         `json:"status"` // "firing" if any alert fires, else "resolved"
	Alerts  []WebhookAlert `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookPayload.
type WebhookAlert struct {
	Status       string            `json:"status"` // "firing" or "resolved"
	Labels       map[string]string `json:"labels"` // includes alertname
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`         // RFC 3339, UTC
	EndsAt       string            `json:"endsAt,omitempty"` // RFC 3339, UTC; absent while firing
	GeneratorURL string            `json:"generatorURL,omitempty"`
	Fingerprint  string            `json:"fingerprint"` // 16 hex digits, stable per Alert.Key
}

type webhookSink struct {
	client   *http.Client
	endpoint string
	shown    string
}

// NewWebhookSink returns a sink that POSTs a WebhookPayload as JSON to url
// for every batch of state changes. It is not a Resender. A nil client means
// one with DefaultHTTPTimeout.
func NewWebhookSink(url string, client *http.Client) (Sink, error) {
	u, err := parseHTTPURL("webhook", url)
	if err != nil {
		return nil, err
	}
	return &webhookSink{client: defaultClient(client), endpoint: u.String(), shown: u.Redacted()}, nil
}

func (s *webhookSink) Name() string { return "webhook" }

func (s *webhookSink) Send(ctx context.Context, alerts []Alert) error {
	return postJSON(ctx, s.client, s.Name(), s.endpoint, s.shown, NewWebhookPayload(alerts))
}

// NewWebhookPayload builds the webhook document for alerts.
func NewWebhookPayload(alerts []Alert) WebhookPayload {
	p := WebhookPayload{Version: WebhookVersion, Status: "resolved", Alerts: make([]WebhookAlert, 0, len(alerts))}
	for _, a := range alerts {
		if a.Firing() {
			p.Status = "firing"
		}
		ann := a.Annotations
		if ann == nil {
			ann = map[string]string{}
		}
		p.Alerts = append(p.Alerts, WebhookAlert{
			Status:       a.Status(),
			Labels:       a.LabelSet(),
			Annotations:  ann,
			StartsAt:     rfc3339(a.StartsAt),
			EndsAt:       rfc3339(a.EndsAt),
			GeneratorURL: a.GeneratorURL,
			Fingerprint:  a.fingerprint(),
		})
	}
	return p
}
