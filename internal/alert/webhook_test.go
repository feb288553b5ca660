package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/alert"
)

type webhookRequest struct {
	header http.Header
	body   []byte
}

func TestWebhookSink(t *testing.T) {
	reqs := make(chan webhookRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		reqs <- webhookRequest{header: r.Header.Clone(), body: body}
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on loopback: %s", srv.URL)
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	sink, err := alert.NewWebhookSink(srv.URL+"/hook", &http.Client{Timeout: 5 * time.Second, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := sink.(alert.Resender); ok && r.Resend() {
		t.Errorf("webhook sink must get state changes only")
	}

	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{sink}, Logger: (&logBuffer{}).logger()})
	d.Start()
	defer stop(t, d)

	a := heapLeak("wh-1")
	a.StartsAt = time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	d.Notify(a)
	firing := decodeWebhook(t, next(t, reqs))
	r := a
	r.EndsAt = a.StartsAt.Add(90 * time.Minute)
	d.Notify(r)
	resolved := decodeWebhook(t, next(t, reqs))

	for _, tc := range []struct {
		name    string
		payload map[string]any
		status  string
		endsAt  string
	}{
		{"firing", firing, "firing", ""},
		{"resolved", resolved, "resolved", "2025-01-02T03:34:05Z"},
	} {
		p := tc.payload
		if got := keys(p); !slices.Equal(got, []string{"alerts", "status", "version"}) {
			t.Errorf("%s: top-level keys %v", tc.name, got)
		}
		if p["version"] != "1" || p["status"] != tc.status {
			t.Errorf("%s: version %v status %v", tc.name, p["version"], p["status"])
		}
		alerts, _ := p["alerts"].([]any)
		if len(alerts) != 1 {
			t.Fatalf("%s: %d alerts, want 1", tc.name, len(alerts))
		}
		al := alerts[0].(map[string]any)
		want := []string{"annotations", "fingerprint", "generatorURL", "labels", "startsAt", "status"}
		if tc.endsAt != "" {
			want = []string{"annotations", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status"}
		}
		if got := keys(al); !slices.Equal(got, want) {
			t.Errorf("%s: alert keys %v, want %v", tc.name, got, want)
		}
		if al["status"] != tc.status {
			t.Errorf("%s: alert status %v", tc.name, al["status"])
		}
		labels := al["labels"].(map[string]any)
		for k, v := range map[string]string{"alertname": "SoakdHeapLeak", "severity": "warning", "run_id": "wh-1", "signal": "heap_live_bytes"} {
			if labels[k] != v {
				t.Errorf("%s: label %s = %v, want %s", tc.name, k, labels[k], v)
			}
		}
		ann := al["annotations"].(map[string]any)
		for _, k := range []string{"summary", "description", "evidence"} {
			if ann[k] != a.Annotations[k] {
				t.Errorf("%s: annotation %s = %v", tc.name, k, ann[k])
			}
		}
		if al["startsAt"] != "2025-01-02T02:04:05Z" {
			t.Errorf("%s: startsAt %v, want RFC 3339 UTC 2025-01-02T02:04:05Z", tc.name, al["startsAt"])
		}
		if tc.endsAt != "" && al["endsAt"] != tc.endsAt {
			t.Errorf("%s: endsAt %v, want %s", tc.name, al["endsAt"], tc.endsAt)
		}
		if fp, _ := al["fingerprint"].(string); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(fp) {
			t.Errorf("%s: fingerprint %q", tc.name, fp)
		}
	}
	fa := firing["alerts"].([]any)[0].(map[string]any)
	ra := resolved["alerts"].([]any)[0].(map[string]any)
	if fa["fingerprint"] != ra["fingerprint"] {
		t.Errorf("fingerprint changed between firing and resolved: %v vs %v", fa["fingerprint"], ra["fingerprint"])
	}
	t.Logf("resolved payload: %s", mustJSON(resolved))
}

func TestWebhookErrorHasStatusAndBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "upstream\nis down "+strings.Repeat("x", 4096))
	}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	sink, err := alert.NewWebhookSink("http://user:secret@"+strings.TrimPrefix(srv.URL, "http://"), &http.Client{Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	err = sink.Send(context.Background(), []alert.Alert{heapLeak("x")})
	if err == nil {
		t.Fatal("no error for 503")
	}
	msg := err.Error()
	if !strings.Contains(msg, "503") || !strings.Contains(msg, "upstream is down") || len(msg) > 800 || strings.Contains(msg, "secret") {
		t.Errorf("error %q: want status, a one-line body snippet, bounded length, no credentials", msg)
	}
}

func next(t *testing.T, c chan webhookRequest) webhookRequest {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook request within 10s")
		return webhookRequest{}
	}
}

func decodeWebhook(t *testing.T, r webhookRequest) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("payload %s: %v", r.body, err)
	}
	return p
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
