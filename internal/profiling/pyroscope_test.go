package profiling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"
)

// verifyNoLeaks checks, after every other cleanup of t (servers closed),
// that no goroutine is left.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// ingestReceiver implements Pyroscope's legacy push endpoint as
// pyroscope-go v1.5.0 uses it (upstream/remote/remote.go uploadProfile):
//
//	POST <server_address>/ingest?name=<app>{k=v,...}&from=<unix ns>&until=<unix ns>
//	     &spyName=gospy&sampleRate=<n>&units=<u>&aggregationType=<a>
//	Content-Type: multipart/form-data; boundary=...
//	  part "profile" (file profile.pprof): a pprof profile (gzipped proto)
//	  part "sample_type_config" (file sample_type_config.json), optional:
//	       {"<sample type>": {"units", "aggregation", "display-name", "sampled", "cumulative"}}
//
// v1.5.0 sends no "prev_profile" part (UploadJob.PrevProfile is deprecated
// and never written) and no "format" query parameter: the multipart body
// is what marks the upload as pprof. The receiver accepts a "prev_profile"
// part (older clients) but rejects any other part, a missing parameter or
// a profile that does not parse, with 400, and records the error.
type ingestReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	uploads []ingestUpload
	errs    []error
}

type ingestUpload struct {
	App              string
	Tags             map[string]string
	From, Until      int64
	SpyName          string
	Units            string
	Aggregation      string
	SampleTypes      []string // type names from the parsed profile
	SampleTypeConfig map[string]sampleTypeConfig
	Samples          int
	Components       map[string]bool // values of the component label seen
}

type sampleTypeConfig struct {
	Units       string `json:"units"`
	Aggregation string `json:"aggregation"`
	DisplayName string `json:"display-name"`
	Sampled     bool   `json:"sampled"`
	Cumulative  bool   `json:"cumulative"`
}

func (u ingestUpload) has(types ...string) bool {
	for _, ty := range types {
		if !slices.Contains(u.SampleTypes, ty) {
			return false
		}
	}
	return true
}

func newIngestReceiver(t *testing.T) *ingestReceiver {
	rc := &ingestReceiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ingest", rc.ingest)
	rc.Server = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(rc.Close)
	return rc
}

func (rc *ingestReceiver) ingest(w http.ResponseWriter, req *http.Request) {
	u, err := parseIngest(req)
	rc.mu.Lock()
	if err != nil {
		rc.errs = append(rc.errs, err)
	} else {
		rc.uploads = append(rc.uploads, u)
	}
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *ingestReceiver) snapshot() ([]ingestUpload, []error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.uploads), slices.Clone(rc.errs)
}

func (rc *ingestReceiver) count(match func(ingestUpload) bool) int {
	ups, _ := rc.snapshot()
	n := 0
	for _, u := range ups {
		if match(u) {
			n++
		}
	}
	return n
}

func parseIngest(req *http.Request) (ingestUpload, error) {
	var u ingestUpload
	if req.Method != http.MethodPost {
		return u, fmt.Errorf("method %s, want POST", req.Method)
	}
	q := req.URL.Query()
	var err error
	if u.App, u.Tags, err = parseAppName(q.Get("name")); err != nil {
		return u, err
	}
	for _, k := range []string{"from", "until"} {
		v, err := strconv.ParseInt(q.Get(k), 10, 64)
		if err != nil || v <= 0 {
			return u, fmt.Errorf("query %s=%q: want unix nanoseconds", k, q.Get(k))
		}
		if k == "from" {
			u.From = v
		} else {
			u.Until = v
		}
	}
	u.SpyName, u.Units, u.Aggregation = q.Get("spyName"), q.Get("units"), q.Get("aggregationType")
	if u.SpyName == "" {
		return u, errors.New("query spyName missing")
	}
	if _, err := strconv.Atoi(q.Get("sampleRate")); err != nil {
		return u, fmt.Errorf("query sampleRate=%q: %v", q.Get("sampleRate"), err)
	}
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return u, fmt.Errorf("content type %q: want multipart/form-data", req.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(req.Body, params["boundary"])
	var data []byte
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return u, fmt.Errorf("multipart: %w", err)
		}
		switch part.FormName() {
		case "profile":
			if data, err = io.ReadAll(part); err != nil {
				return u, err
			}
		case "prev_profile":
			_, _ = io.Copy(io.Discard, part)
		case "sample_type_config":
			dec := json.NewDecoder(part)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&u.SampleTypeConfig); err != nil {
				return u, fmt.Errorf("sample_type_config: %w", err)
			}
		default:
			return u, fmt.Errorf("unexpected multipart part %q", part.FormName())
		}
	}
	if len(data) == 0 {
		return u, errors.New(`multipart part "profile" missing or empty`)
	}
	prof, err := profile.ParseData(data)
	if err != nil {
		return u, fmt.Errorf("profile: %w", err)
	}
	if err := prof.CheckValid(); err != nil {
		return u, fmt.Errorf("profile: %w", err)
	}
	for _, st := range prof.SampleType {
		u.SampleTypes = append(u.SampleTypes, st.Type)
	}
	for k := range u.SampleTypeConfig {
		if !slices.Contains(u.SampleTypes, k) {
			return u, fmt.Errorf("sample_type_config names %q, not a sample type of the profile %v", k, u.SampleTypes)
		}
	}
	u.Samples = len(prof.Sample)
	u.Components = map[string]bool{}
	for _, s := range prof.Sample {
		for _, v := range s.Label[ComponentLabel] {
			u.Components[v] = true
		}
	}
	return u, nil
}

// parseAppName splits app{k=v,k2=v2}.
func parseAppName(name string) (string, map[string]string, error) {
	app, rest, ok := strings.Cut(name, "{")
	if app == "" {
		return "", nil, fmt.Errorf("query name=%q: empty application name", name)
	}
	tags := map[string]string{}
	if !ok {
		return app, tags, nil
	}
	inner, ok := strings.CutSuffix(rest, "}")
	if !ok {
		return "", nil, fmt.Errorf("query name=%q: unterminated tag set", name)
	}
	if inner == "" {
		return app, tags, nil
	}
	for kv := range strings.SplitSeq(inner, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", nil, fmt.Errorf("query name=%q: bad tag %q", name, kv)
		}
		tags[k] = v
	}
	return app, tags, nil
}

func isHeap(u ingestUpload) bool { return u.has("inuse_space", "alloc_space") }

func isGoroutine(u ingestUpload) bool { return u.has("goroutine") }

// waitFor polls cond (the receiver is fed by real HTTP uploads) until it
// holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// churn allocates (retaining a bounded window) until stop is closed.
func churn(stop <-chan struct{}) {
	keep := make([][]byte, 32)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		keep[i%len(keep)] = make([]byte, 64<<10)
		time.Sleep(time.Millisecond)
	}
}

func TestPyroscopePushPeriodic(t *testing.T) {
	verifyNoLeaks(t)
	rc := newIngestReceiver(t)
	log, logs := newTestLogger()
	p, err := New(Options{
		Config:     profilingConfig(rc.URL, time.Hour, 1<<20),
		Dir:        t.TempDir(),
		RunID:      "run-7f3a",
		Tags:       map[string]string{"host": "ci-1"},
		Logger:     log,
		uploadRate: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	Do(ctx, "load", func(context.Context) { wg.Go(func() { churn(stop) }) })

	// At least two heap uploads before Stop: the push is periodic, not
	// only the flush at Stop.
	waitFor(t, 20*time.Second, "two heap and one goroutine upload", func() bool {
		return rc.count(isHeap) >= 2 && rc.count(isGoroutine) >= 1
	})
	close(stop)
	wg.Wait()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	ups, errs := rc.snapshot()
	for _, err := range errs {
		t.Errorf("receiver rejected an upload: %v", err)
	}
	var heap, gor, cpu, leak, labelled int
	for _, u := range ups {
		if u.App != "soakd-test" || u.Tags[runIDTag] != "run-7f3a" || u.Tags["host"] != "ci-1" {
			t.Errorf("upload name: app %q tags %v, want soakd-test with run_id=run-7f3a host=ci-1", u.App, u.Tags)
		}
		if u.SpyName != "gospy" {
			t.Errorf("spyName %q", u.SpyName)
		}
		switch {
		case isHeap(u):
			heap++
			if !u.has("inuse_objects", "alloc_objects") {
				t.Errorf("heap upload sample types %v", u.SampleTypes)
			}
			if _, ok := u.SampleTypeConfig["inuse_space"]; !ok {
				t.Errorf("heap upload sample_type_config %v lacks inuse_space", u.SampleTypeConfig)
			}
		case isGoroutine(u):
			gor++
			if u.Samples == 0 {
				t.Errorf("goroutine upload with no samples")
			}
			if u.Components["load"] {
				labelled++
			}
		case u.has("cpu"):
			cpu++
		case u.has("goroutineleak"):
			leak++
		default:
			t.Errorf("unexpected upload with sample types %v", u.SampleTypes)
		}
	}
	if heap < 2 || gor < 1 || cpu < 1 {
		t.Errorf("uploads: heap %d, goroutine %d, cpu %d; want >=2, >=1, >=1", heap, gor, cpu)
	}
	if sup := SupportsGoroutineLeakProfile(); sup != (leak > 0) {
		t.Errorf("%d goroutine_leak uploads; runtime supports the profile: %v", leak, sup)
	}
	// The churn goroutine ran inside Do(ctx, "load"): the goroutine
	// uploads taken while it ran carry the label.
	if labelled == 0 {
		t.Errorf("no goroutine upload has a component=load sample")
	}
	if w := logs.lines("level=WARN"); len(w) != 0 {
		t.Errorf("warnings with a healthy server: %v", w)
	}
}

// With the default 15 s upload period, everything the receiver gets within
// a second came from Stop's flush of the last partial period.
func TestPyroscopeStopFlushes(t *testing.T) {
	verifyNoLeaks(t)
	rc := newIngestReceiver(t)
	p, err := New(Options{
		Config: profilingConfig(rc.URL, time.Hour, 1<<20),
		Dir:    t.TempDir(),
		RunID:  "run-flush",
	})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := rc.count(func(ingestUpload) bool { return true }); n != 0 {
		t.Fatalf("%d uploads before Stop with a 15 s upload period", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if el := time.Since(began); el >= 15*time.Second {
		t.Skipf("took %s, a periodic upload may have happened", el)
	}
	ups, errs := rc.snapshot()
	if len(errs) > 0 {
		t.Fatalf("receiver errors: %v", errs)
	}
	if rc.count(isHeap) < 1 || rc.count(isGoroutine) < 1 {
		t.Fatalf("after Stop: %d uploads, heap %d, goroutine %d; want the flush to upload both",
			len(ups), rc.count(isHeap), rc.count(isGoroutine))
	}
	for _, u := range ups {
		if u.App != "soakd-test" || u.Tags[runIDTag] != "run-flush" {
			t.Errorf("upload name: app %q tags %v", u.App, u.Tags)
		}
	}
}

func TestPyroscopeUnreachable(t *testing.T) {
	verifyNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connection refused
	log, logs := newTestLogger()
	p, err := New(Options{
		Config:     profilingConfig("http://"+addr, time.Hour, 1<<20),
		Dir:        t.TempDir(),
		RunID:      "run-down",
		Logger:     log,
		uploadRate: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start with an unreachable server: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	// About 15 upload cycles of 3 profiles each (cpu, heap, goroutine).
	waitFor(t, 20*time.Second, "upload failures", func() bool {
		total, _ := p.push.logger.counts()
		return total >= 20
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	err = p.Stop(ctx)
	if el := time.Since(began); el > 3*time.Second {
		t.Errorf("Stop took %s with an unreachable server", el)
	}
	if err != nil {
		t.Errorf("Stop: %v (failed uploads are not a Stop error)", err)
	}
	total, _ := p.push.logger.counts()
	warns := logs.lines("level=WARN")
	if len(warns) != 1 {
		t.Fatalf("%d warnings for %d upload errors within a minute, want exactly 1:\n%s", len(warns), total, strings.Join(warns, ""))
	}
	t.Logf("%d upload errors, one warning: %s", total, warns[0])
	if !strings.Contains(warns[0], "pyroscope push failing") || !strings.Contains(warns[0], "connection refused") {
		t.Errorf("warning does not name the problem: %s", warns[0])
	}
	if st := logs.lines("pyroscope push stopped"); len(st) != 1 || !strings.Contains(st[0], fmt.Sprintf("upload_errors=%d", total)) {
		t.Errorf("stop summary %q, want upload_errors=%d", st, total)
	}
}

// A server that accepts and never answers: Stop is bounded by its ctx,
// cancels the uploads in flight and leaves no goroutine.
func TestPyroscopeBlackholeStopBounded(t *testing.T) {
	verifyNoLeaks(t)
	release := make(chan struct{})
	var nhits int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		nhits++
		mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	log, logs := newTestLogger()
	p, err := New(Options{
		Config:     profilingConfig(srv.URL, time.Hour, 1<<20),
		Dir:        t.TempDir(),
		Logger:     log,
		uploadRate: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "uploads hanging on the server", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return nhits >= uploadThreads
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = p.Stop(ctx)
	el := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want the deadline error", err)
	}
	if el > 2*time.Second {
		t.Errorf("Stop took %s with a 300ms deadline", el)
	}
	if w := logs.lines("level=WARN"); len(w) > 1 {
		t.Errorf("%d warnings, want at most 1: %v", len(w), w)
	}
}

func TestPyroLoggerRateLimit(t *testing.T) {
	log, logs := newTestLogger()
	fc := clockwork.NewFakeClock()
	l := &pyroLogger{log: log, clock: fc, every: time.Minute}
	warns := func() []string { return logs.lines("level=WARN") }

	l.Errorf("upload profile: %v", "boom 1")
	l.Errorf("upload profile: %v", "boom 2")
	l.Errorf("upload profile: %v", "boom 3")
	if w := warns(); len(w) != 1 || !strings.Contains(w[0], "boom 1") || !strings.Contains(w[0], "suppressed=0") {
		t.Fatalf("after 3 errors at once: %q", w)
	}
	fc.Advance(59 * time.Second)
	l.Errorf("upload profile: %v", "boom 4")
	if w := warns(); len(w) != 1 {
		t.Fatalf("second warning within the minute: %q", w)
	}
	fc.Advance(time.Second)
	l.Errorf("upload profile: %v", strings.Repeat("x", 4000))
	w := warns()
	if len(w) != 2 || !strings.Contains(w[1], "suppressed=3") {
		t.Fatalf("after a minute: %q, want a second warning with suppressed=3", w)
	}
	if len(w[1]) > maxLoggedErrLen+200 {
		t.Errorf("warning not truncated: %d bytes", len(w[1]))
	}
	if total, sup := l.counts(); total != 5 || sup != 0 {
		t.Errorf("counts total=%d suppressed=%d, want 5, 0", total, sup)
	}
	l.Infof("starting profiling session:")
	if d := logs.lines("level=DEBUG"); len(d) != 1 {
		t.Errorf("Infof should log at debug: %q", d)
	}
}

func TestStartRejectsBadTag(t *testing.T) {
	verifyNoLeaks(t)
	rc := newIngestReceiver(t)
	p, err := New(Options{
		Config: profilingConfig(rc.URL, time.Hour, 1<<20),
		Dir:    t.TempDir(),
		Tags:   map[string]string{"bad-key": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bad-key") {
		t.Fatalf("Start: %v, want an error naming the tag", err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTagValueEscapesDelimiters(t *testing.T) {
	if got := tagValue(" a{b=c,d}\"e "); got != "a_b_c_d__e" {
		t.Fatalf("tagValue = %q", got)
	}
}
