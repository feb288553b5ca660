package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PrometheusConfig says what a test Prometheus scrapes and evaluates.
type PrometheusConfig struct {
	Job          string        // scrape job name; default "soakd" (the rules' SoakdStalled matches it)
	Targets      []string      // host:port to scrape at /metrics
	RuleFiles    []string      // rule files to load (made absolute)
	Alertmanager string        // base URL of an Alertmanager to send alerts to; "" for none
	Interval     time.Duration // scrape and evaluation interval; default 1s
}

// StartPrometheus runs the real Prometheus (Debian package prometheus) on a
// free loopback port with a fresh TSDB in a temp dir, and returns its base
// URL once /-/ready answers 200. The test is skipped if prometheus is not
// installed.
func StartPrometheus(t testing.TB, c PrometheusConfig) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus binary not found in PATH (Debian package prometheus); skipping the Prometheus integration test")
	}
	if c.Job == "" {
		c.Job = "soakd"
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n  scrape_timeout: %s\n", c.Interval, c.Interval, c.Interval)
	if len(c.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range c.RuleFiles {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "  - %q\n", abs)
		}
	}
	if c.Alertmanager != "" {
		u, err := url.Parse(c.Alertmanager)
		if err != nil {
			t.Fatalf("alertmanager URL %q: %v", c.Alertmanager, err)
		}
		fmt.Fprintf(&b, "alerting:\n  alertmanagers:\n    - scheme: %s\n      static_configs:\n        - targets: [%q]\n", u.Scheme, u.Host)
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %q\n    static_configs:\n      - targets: [", c.Job)
	for i, tg := range c.Targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", tg)
	}
	b.WriteString("]\n")
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.external-url=http://"+addr,
		"--log.level=warn",
	)
	return startAndWait(t, "prometheus", cmd, "http://"+addr, "\nconfig:\n"+b.String())
}

// PromAPI GETs a Prometheus HTTP API path (with query parameters) and
// decodes the "data" member of a success response into out.
func PromAPI(client *http.Client, base, path string, params url.Values, out any) error {
	u := base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: decode %q: %w", path, resp.Status, body, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// PromTarget is one active target of /api/v1/targets.
type PromTarget struct {
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

// PromAlert is one alert of /api/v1/alerts.
type PromAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// PromSample is one element of an instant vector result.
type PromSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// PromQuery runs an instant query and returns its result as samples (a
// scalar result comes back as one sample without labels).
func PromQuery(client *http.Client, base, query string) ([]PromSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := PromAPI(client, base, "/api/v1/query", url.Values{"query": {query}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var out []PromSample
		err := json.Unmarshal(data.Result, &out)
		return out, err
	case "scalar":
		var v [2]any
		err := json.Unmarshal(data.Result, &v)
		return []PromSample{{Value: v}}, err
	default:
		return nil, fmt.Errorf("query %s: result type %s", query, data.ResultType)
	}
}
