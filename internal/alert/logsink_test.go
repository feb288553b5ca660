package alert_test

import (
	"context"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/alert"
)

func TestLogSink(t *testing.T) {
	logs := &logBuffer{}
	s := alert.NewLogSink(logs.logger())
	a := heapLeak("log-1")
	a.StartsAt = time.Now().Add(-time.Hour)
	r := a
	r.EndsAt = time.Now()
	if err := s.Send(context.Background(), []alert.Alert{a, r}); err != nil {
		t.Fatal(err)
	}
	firing := logs.lines(t, "alert firing")
	resolved := logs.lines(t, "alert resolved")
	if len(firing) != 1 || len(resolved) != 1 {
		t.Fatalf("firing %d resolved %d lines, want 1 and 1", len(firing), len(resolved))
	}
	if firing[0]["level"] != "WARN" || resolved[0]["level"] != "INFO" {
		t.Errorf("levels %v / %v, want WARN / INFO", firing[0]["level"], resolved[0]["level"])
	}
	for _, l := range []map[string]any{firing[0], resolved[0]} {
		labels, _ := l["labels"].(map[string]any)
		if labels["run_id"] != "log-1" || labels["severity"] != "warning" || labels["alertname"] != "SoakdHeapLeak" {
			t.Errorf("labels %v", l["labels"])
		}
		if l["evidence"] != a.Annotations["evidence"] || l["summary"] != a.Annotations["summary"] {
			t.Errorf("evidence/summary missing: %v", l)
		}
	}
	if resolved[0]["ends_at"] == nil {
		t.Errorf("resolved line lacks ends_at: %v", resolved[0])
	}
}
