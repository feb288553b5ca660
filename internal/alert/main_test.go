package alert_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recordingSink records every batch it is sent.
type recordingSink struct {
	name   string
	resend bool
	sent   chan []alert.Alert // every batch, also kept in batches

	mu      sync.Mutex
	batches [][]alert.Alert
}

func newRecordingSink(name string, resend bool) *recordingSink {
	return &recordingSink{name: name, resend: resend, sent: make(chan []alert.Alert, 4096)}
}

func (s *recordingSink) Name() string { return s.name }
func (s *recordingSink) Resend() bool { return s.resend }
func (s *recordingSink) Send(ctx context.Context, alerts []alert.Alert) error {
	cp := append([]alert.Alert(nil), alerts...)
	s.mu.Lock()
	s.batches = append(s.batches, cp)
	s.mu.Unlock()
	s.sent <- cp
	return nil
}

func (s *recordingSink) all() [][]alert.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]alert.Alert(nil), s.batches...)
}

func (s *recordingSink) alertCount() int {
	n := 0
	for _, b := range s.all() {
		n += len(b)
	}
	return n
}

// next waits for the next batch.
func (s *recordingSink) next(t *testing.T) []alert.Alert {
	t.Helper()
	select {
	case b := <-s.sent:
		return b
	case <-time.After(10 * time.Second):
		t.Fatalf("sink %s: no batch within 10s", s.name)
		return nil
	}
}

// hungSink blocks in Send until its context ends, like a receiver that
// accepts the connection and never answers.
type hungSink struct {
	name    string
	entered chan struct{}
}

func newHungSink(name string) *hungSink {
	return &hungSink{name: name, entered: make(chan struct{}, 1024)}
}

func (s *hungSink) Name() string { return s.name }
func (s *hungSink) Send(ctx context.Context, alerts []alert.Alert) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// logBuffer is a concurrency-safe slog JSON sink for asserting log lines.
type logBuffer struct{ testutil.SyncBuffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the decoded log records whose msg is msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	text := b.String()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func heapLeak(runID string) alert.Alert {
	return alert.Alert{
		Name:   "SoakdHeapLeak",
		Labels: map[string]string{"severity": "warning", "run_id": runID, "signal": "heap_live_bytes"},
		Annotations: map[string]string{
			"summary":     "heap_live_bytes grows 2.1 MiB/min",
			"description": "heap_live_bytes grew at 2.1 MiB/min (threshold 1 MiB/min) over the last 30m",
			"evidence":    "/var/lib/soakd/evidence/0001-heap_live_bytes",
		},
		GeneratorURL: "http://127.0.0.1:9477/api/v1/alerts",
	}
}

func stop(t *testing.T, d *alert.Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}
