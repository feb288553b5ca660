package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const amConfig = `global:
  resolve_timeout: 5m
route:
  receiver: "null"
  group_by: [alertname]
receivers:
  - name: "null"
`

// SyncBuffer collects a child process's output.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartAlertmanager runs the real Alertmanager on a free loopback port and
// returns its base URL once /-/ready answers 200.
func StartAlertmanager(t testing.TB) string {
	t.Helper()
	return StartAlertmanagerWith(t, amConfig)
}

// StartAlertmanagerWith is StartAlertmanager with the given config file
// contents.
func StartAlertmanagerWith(t testing.TB, config string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Skip("prometheus-alertmanager binary not found in PATH (Debian package prometheus-alertmanager); skipping the Alertmanager integration test")
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	)
	return startAndWait(t, "alertmanager", cmd, "http://"+addr, "")
}

// GettableAlert is the part of Alertmanager's API v2 gettableAlert we check.
type GettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// GetAlerts fetches and decodes an Alertmanager alert listing.
func GetAlerts(t testing.TB, client *http.Client, url string) ([]GettableAlert, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	var out []GettableAlert
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: decode %s: %v", url, body, err)
	}
	return out, string(body)
}

// FindAlert returns the alert with this alertname and run_id, or nil.
func FindAlert(alerts []GettableAlert, name, runID string) *GettableAlert {
	for i := range alerts {
		if alerts[i].Labels["alertname"] == name && alerts[i].Labels["run_id"] == runID {
			return &alerts[i]
		}
	}
	return nil
}

// startAndWait starts cmd, kills it when the test ends, and waits until
// base/-/ready answers 200, failing the test with the process's output (and
// extra) if it exits first or is not ready in 30 s.
func startAndWait(t testing.TB, name string, cmd *exec.Cmd, base, extra string) string {
	t.Helper()
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s%s", name, out.String(), extra)
		}
	})
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready:\n%s%s", name, out.String(), extra)
		default:
		}
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s (last error %v):\n%s", name, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
