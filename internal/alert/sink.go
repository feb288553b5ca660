package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sink delivers a batch of alerts somewhere. Send must honour ctx (the
// Dispatcher cancels it on Stop and after SendTimeout), must not modify the
// alerts, and is called from one goroutine at a time.
type Sink interface {
	Name() string
	Send(ctx context.Context, alerts []Alert) error
}

// Resender is implemented by sinks that need every firing alert re-sent each
// DispatcherOptions.ResendInterval (Alertmanager forgets alerts that are not
// re-sent within its resolve_timeout). Sinks that do not implement it get
// state changes only.
type Resender interface {
	Resend() bool
}

// WithResend returns s with its Resend property set to resend, for sinks
// whose receiving end needs (or must not get) periodic re-sends.
func WithResend(s Sink, resend bool) Sink { return resendSink{Sink: s, resend: resend} }

type resendSink struct {
	Sink
	resend bool
}

func (s resendSink) Resend() bool { return s.resend }

func wantsResend(s Sink) bool {
	r, ok := s.(Resender)
	return ok && r.Resend()
}

// StatusError is returned by the HTTP sinks when the receiver answers with a
// non-2xx status.
type StatusError struct {
	Sink       string
	URL        string
	StatusCode int
	Body       string // the start of the response body, on one line
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("alert: %s: POST %s: status %d", e.Sink, e.URL, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		msg += " " + t
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether sending the same request again may succeed:
// false for 4xx answers other than 408 and 429, which reject the payload.
func (e *StatusError) Retryable() bool {
	if e.StatusCode >= 400 && e.StatusCode < 500 {
		return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
	}
	return true
}

// DefaultHTTPTimeout bounds one HTTP request of a sink built with a nil
// client.
const DefaultHTTPTimeout = 10 * time.Second

const (
	bodySnippetBytes = 512      // response bytes quoted in a StatusError
	bodyDrainBytes   = 64 << 10 // response bytes read to reuse the connection
)

func defaultClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: DefaultHTTPTimeout}
}

// parseHTTPURL checks that raw is an absolute http(s) URL with a host.
func parseHTTPURL(what, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("alert: %s URL %q: %w", what, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alert: %s URL %q: must be an http(s) URL with a host", what, raw)
	}
	return u, nil
}

// postJSON POSTs v as JSON to endpoint and returns a *StatusError for a
// non-2xx answer.
// shown is the endpoint as it may appear in errors (credentials redacted).
func postJSON(ctx context.Context, client *http.Client, sink, endpoint, shown string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("alert: %s: encode: %w", sink, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert: %s: %w", sink, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "soakd")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("alert: %s: POST %s: %w", sink, shown, unwrapURLError(err))
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, bodySnippetBytes+1))
	_, _ = io.CopyN(io.Discard, resp.Body, bodyDrainBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Sink: sink, URL: shown, StatusCode: resp.StatusCode, Body: snippet(head, bodySnippetBytes)}
	}
	return nil
}

// unwrapURLError drops net/http's *url.Error wrapper, which repeats the
// full URL (credentials included); the caller names the redacted URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
