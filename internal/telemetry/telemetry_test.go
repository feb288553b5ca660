package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMetricsAreLintClean(t *testing.T) {
	reg := NewRegistry("v1.2.3", "abc")
	m := RegisterRun(reg, RunGauges{
		RunID: "r1", Seed: 7, Version: "v1.2.3",
		ElapsedSeconds: func() float64 { return 12 },
		TargetSeconds:  func() float64 { return 3600 },
		Incarnation:    func() float64 { return 2 },
	}, func() float64 { return 0 })
	m.Events.WithLabelValues("run_started").Inc()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(reg, "soakd_build_info", "soakd_run_elapsed_seconds", "soakd_run_target_seconds", "soakd_run_incarnation")
	if err != nil || n != 4 {
		t.Fatalf("run metrics count = %d, %v", n, err)
	}
	want := `
# HELP soakd_run_incarnation How many times this run has been started: 1 for a fresh run, +1 per resume.
# TYPE soakd_run_incarnation gauge
soakd_run_incarnation 2
# HELP soakd_run_info A metric with a constant '1' value labeled by the run's id, seed and the soakd version running it.
# TYPE soakd_run_info gauge
soakd_run_info{run_id="r1",seed="7",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "soakd_run_incarnation", "soakd_run_info"); err != nil {
		t.Fatal(err)
	}
}

func startServer(t *testing.T, o ServerOptions) (*Server, string) {
	t.Helper()
	o.Addr = "127.0.0.1:0"
	s := NewServer(o)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s, "http://" + s.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerEndpoints(t *testing.T) {
	var ready bool
	var mu sync.Mutex
	checkpoints := 0
	_, base := startServer(t, ServerOptions{
		Registry: NewRegistry("v", "r"),
		Status:   func() any { return map[string]any{"run_id": "r1"} },
		Alerts:   func() any { return []string{"SoakdHeapLeak"} },
		Events: func(after int64, limit int, typ string) (any, int64, error) {
			return []map[string]any{{"seq": after + 1, "type": typ, "limit": limit}}, after + 1, nil
		},
		Ready:      func() bool { mu.Lock(); defer mu.Unlock(); return ready },
		Token:      "sekrit",
		Checkpoint: func() error { checkpoints++; return nil },
	})

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Fatalf("readyz before ready = %d, want 503", code)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "soakd_build_info{") || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_open_fds") {
		t.Fatalf("metrics = %d, missing expected series:\n%.500s", code, body)
	}
	if code, body := get(t, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index = %d", code)
	}
	if code, body := get(t, base+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile = %d", code)
	}
	code, body := get(t, base+"/api/v1/status")
	var st map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["run_id"] != "r1" {
		t.Fatalf("status = %d %s", code, body)
	}
	if code, body := get(t, base+"/api/v1/alerts"); code != 200 || !strings.Contains(body, "SoakdHeapLeak") {
		t.Fatalf("alerts = %d %s", code, body)
	}
	code, body = get(t, base+"/api/v1/events?after=5&limit=2&type=fault_injected")
	var page struct {
		Events []map[string]any `json:"events"`
		Next   int64            `json:"next_after"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || page.Next != 6 || page.Events[0]["type"] != "fault_injected" || page.Events[0]["limit"] != 2.0 {
		t.Fatalf("events = %d %s", code, body)
	}
	for _, bad := range []string{"?after=-1", "?after=x", "?limit=0", "?limit=100000"} {
		if code, body := get(t, base+"/api/v1/events"+bad); code != 400 || !strings.Contains(body, "must be") {
			t.Fatalf("events%s = %d %s, want 400", bad, code, body)
		}
	}
	// Mutating endpoints need the bearer token.
	post := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/checkpoint", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(""); c != 401 {
		t.Fatalf("checkpoint without token = %d", c)
	}
	if c := post("Bearer wrong"); c != 401 {
		t.Fatalf("checkpoint with wrong token = %d", c)
	}
	if c := post("Bearer sekrit"); c != 200 || checkpoints != 1 {
		t.Fatalf("checkpoint with token = %d, calls %d", c, checkpoints)
	}
	if code, _ := get(t, base+"/api/v1/checkpoint"); code != 405 {
		t.Fatalf("GET checkpoint = %d, want 405", code)
	}
}

func TestServerReportsPortInUse(t *testing.T) {
	s, _ := startServer(t, ServerOptions{})
	s2 := NewServer(ServerOptions{Addr: s.Addr()})
	err := s2.Start()
	if err == nil || !strings.Contains(err.Error(), "listen "+s.Addr()) {
		t.Fatalf("second Start = %v, want listen error naming the address", err)
	}
}

func TestJournaldLogLines(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "8:1234")
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelDebug).With("run_id", "r1")
	log.Error("checkpoint failed", "err", "disk full")
	log.Info("started")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines = %q", lines)
	}
	if !strings.HasPrefix(lines[0], "<3>") || !strings.Contains(lines[0], `msg="checkpoint failed"`) || !strings.Contains(lines[0], "run_id=r1") {
		t.Fatalf("error line = %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "<6>") || strings.Contains(lines[1], "time=") {
		t.Fatalf("info line = %q (journald adds the time itself)", lines[1])
	}
}
