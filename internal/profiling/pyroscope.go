package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/jonboulle/clockwork"
)

// Pyroscope push, via github.com/grafana/pyroscope-go v1.5.0.
//
// Bounds (read from the v1.5.0 source):
//   - Memory: upstream/remote/remote.go, NewRemote: `jobs: make(chan job, 20)`,
//     and Remote.Upload enqueues with a non-blocking select that drops the
//     job ("remote upload queue is full, dropping a profile job") when full.
//     So against a slow or unreachable server at most 20 queued profiles
//     plus one in flight per upload goroutine (api.go: Threads: 5) are held;
//     nothing grows, and the profiling goroutines never block on the network.
//   - Time per upload: our HTTP client's uploadTimeout (api.go's default is
//     30 s; we pass our own client, see newUploadClient).
//   - Stop: bounded by the caller's ctx; past it in-flight uploads are
//     cancelled through the client's context.
//
// Note: pyroscope-go replaces ServerAddress with $PYROSCOPE_ADHOC_SERVER_ADDRESS
// when that is set (api.go, Start).

const (
	// warnEvery bounds the push-failure warnings: at most one per window,
	// carrying the count of errors suppressed since the previous one.
	warnEvery = time.Minute
	// uploadTimeout bounds one upload HTTP request. Below the 15 s upload
	// period, so a black-holed server ties up an upload goroutine for at
	// most one period.
	uploadTimeout = 10 * time.Second
	// uploadThreads mirrors pyroscope-go's fixed remote.Config.Threads.
	uploadThreads = 5
	// abandonGrace bounds Stop after ctx expired and the uploads were
	// cancelled (they then fail at once; this is a backstop).
	abandonGrace = 5 * time.Second
	// maxLoggedErrLen caps the error text logged (a failing server's
	// response body is part of pyroscope-go's error).
	maxLoggedErrLen = 512
	// runIDTag is the tag carrying Options.RunID.
	runIDTag = "run_id"
)

// pushProfileTypes are the profile types pushed to Pyroscope.
//
// Not pushed: mutex_* and block_*. godeltaprof's mutex and block profiles
// are empty unless the process sets runtime.SetMutexProfileFraction /
// runtime.SetBlockProfileRate, which pyroscope-go never does. Both are
// process-global; block profiling samples every blocking channel, select
// and sync operation over the rate, i.e. the hot paths of raft, PBFT and the
// load engine, so it would slow and perturb the very system under soak, and
// leak detection does not need contention data. Turning them on is a
// deliberate per-investigation choice, not a 72-hour default.
//
// goroutine_leak: pyroscope-go v1.5.0 supports it (types.go
// ProfileGoroutineLeak = "goroutine_leak"; session.go uploads
// pprof.Lookup("goroutineleak") with sample type "goroutineleak"), but the
// runtime only has that profile when built with
// GOEXPERIMENT=goroutineleakprofile (Go 1.26). It is requested only when
// SupportsGoroutineLeakProfile; each upload then runs one leak-detection GC
// cycle per upload period, a price worth paying in a goroutine-leak harness.
func pushProfileTypes() []pyroscope.ProfileType {
	types := []pyroscope.ProfileType{
		pyroscope.ProfileCPU,
		pyroscope.ProfileInuseSpace,
		pyroscope.ProfileInuseObjects,
		pyroscope.ProfileAllocSpace,
		pyroscope.ProfileAllocObjects,
		pyroscope.ProfileGoroutines,
	}
	if SupportsGoroutineLeakProfile() {
		types = append(types, pyroscope.ProfileGoroutineLeak)
	}
	return types
}

type pusher struct {
	prof      *pyroscope.Profiler
	transport *http.Transport
	cancel    context.CancelFunc // cancels every upload request
	logger    *pyroLogger
	log       *slog.Logger
}

func startPusher(o Options, clock clockwork.Clock, log *slog.Logger) (*pusher, error) {
	tags := make(map[string]string, len(o.Tags)+1)
	for k, v := range o.Tags {
		tags[k] = tagValue(v)
	}
	if o.RunID != "" {
		tags[runIDTag] = tagValue(o.RunID)
	}
	pl := &pyroLogger{log: log, clock: clock, every: warnEvery}
	ctx, cancel := context.WithCancel(context.Background())
	transport, client := newUploadClient(ctx)
	types := pushProfileTypes()
	prof, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: o.Config.Pyroscope.ApplicationName,
		ServerAddress:   o.Config.Pyroscope.ServerAddress,
		Tags:            tags,
		ProfileTypes:    types,
		Logger:          pl,
		UploadRate:      o.uploadRate, // 0: pyroscope-go's 15 s
		HTTPClient:      client,
		// DisableGCRuns: false. pyroscope-go (session.go, dumpHeapProfile)
		// calls runtime.GC before a heap upload only when no GC completed
		// since the previous upload. Under soak load the runtime collects
		// far more often than every 15 s, so that forced GC almost never
		// runs; it runs when soakd is nearly idle, which is when a GC is
		// cheapest. Disabling it would cost more than it saves: godeltaprof
		// skips the heap upload when the GC generation has not moved, so a
		// quiet window would have no in-use profile, precisely while a
		// slow leak is being looked for; and leakcheck's sampler reads
		// runtime/metrics /gc/heap/live:bytes, which only changes at the end
		// of a GC cycle, so the forced GC also keeps that post-GC figure at
		// most one upload period old. The price, a slightly perturbed GC
		// pacing on an idle process, is visible rather than hidden: forced
		// cycles are counted apart in /gc/cycles/forced:gc-cycles.
		DisableGCRuns: false,
	})
	if err != nil {
		cancel()
		transport.CloseIdleConnections()
		return nil, err
	}
	log.Info("pyroscope push started", "server", o.Config.Pyroscope.ServerAddress,
		"application", o.Config.Pyroscope.ApplicationName, "tags", tags, "profile_types", types)
	return &pusher{prof: prof, transport: transport, cancel: cancel, logger: pl, log: log}, nil
}

// stop flushes the session's last partial period (pyroscope-go's Stop alone
// drops it for every type but CPU), waits for the queued uploads, then stops
// the session and the upload goroutines. If ctx ends first, in-flight and
// queued uploads are cancelled so the goroutines exit promptly.
func (ps *pusher) stop(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ps.prof.Flush(true)
		_ = ps.prof.Stop()
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("pyroscope final upload abandoned: %w", context.Cause(ctx))
		ps.logger.setQuiet() // the cancellations below are ours, not the server's
		ps.cancel()
		t := time.NewTimer(abandonGrace) // I/O bound, not simulated time
		select {
		case <-done:
		case <-t.C:
			err = errors.Join(err, errors.New("pyroscope client did not stop after its uploads were cancelled"))
		}
		t.Stop()
	}
	ps.cancel()
	ps.transport.CloseIdleConnections()
	total, suppressed := ps.logger.counts()
	ps.log.Info("pyroscope push stopped", "upload_errors", total, "unreported_errors", suppressed)
	return err
}

// newUploadClient is the HTTP client pyroscope-go uploads with. It replaces
// the library's default so that (1) every request carries ctx, which Stop
// cancels, (2) Stop can close the idle keep-alive connections (whose
// goroutines would otherwise outlive the Profiler) and (3) the timeouts are
// ours. Like the default it follows no redirects (remote.go explains why).
func newUploadClient(ctx context.Context) (*http.Transport, *ctxClient) {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:       uploadThreads,
		MaxIdleConnsPerHost:   uploadThreads,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: uploadTimeout,
		ForceAttemptHTTP2:     true,
	}
	return tr, &ctxClient{ctx: ctx, c: &http.Client{
		Transport: tr,
		Timeout:   uploadTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

type ctxClient struct {
	ctx context.Context
	c   *http.Client
}

// Do implements remote.HTTPClient. pyroscope-go builds its requests with
// context.Background; they get ours.
func (c *ctxClient) Do(req *http.Request) (*http.Response, error) {
	return c.c.Do(req.WithContext(c.ctx))
}

// tagValue keeps a tag value from breaking the app{k=v,...} name format
// pyroscope-go sends (it does not escape): the delimiters become '_'.
func tagValue(v string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '{', '}', ',', '=', '"':
			return '_'
		}
		return r
	}, strings.TrimSpace(v))
}

// pyroLogger adapts pyroscope-go's Logger to slog. Infof and Debugf (session
// settings, "uploading at <url>") go to Debug. Errorf (failed uploads, the
// full queue, failed profile dumps) becomes a Warn rate-limited to one per
// `every`, carrying how many errors were suppressed since the previous
// warning, so an unreachable server yields a steady trickle instead of ~3
// lines every 15 s for 72 hours.
type pyroLogger struct {
	log   *slog.Logger
	clock clockwork.Clock
	every time.Duration

	mu         sync.Mutex
	last       time.Time // time of the last warning; zero: none yet
	suppressed int64     // errors since the last warning, not reported
	total      int64
	quiet      bool
}

func (l *pyroLogger) Errorf(format string, args ...any) {
	l.mu.Lock()
	l.total++
	now := l.clock.Now()
	if l.quiet || (!l.last.IsZero() && now.Sub(l.last) < l.every) {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.suppressed = 0
	l.last = now
	l.mu.Unlock()
	// The upload URL's query (from, until, the whole tag set) repeats
	// what the start-up line said; keep the line readable.
	msg := ingestQuery.ReplaceAllString(fmt.Sprintf(format, args...), "$1")
	if len(msg) > maxLoggedErrLen {
		msg = msg[:maxLoggedErrLen] + "..."
	}
	l.log.Warn("pyroscope push failing", "err", msg, "suppressed", n, "rate_limit", l.every)
}

var ingestQuery = regexp.MustCompile(`(/ingest)\?[^"\s]*`)

func (l *pyroLogger) Infof(format string, args ...any)  { l.debug(format, args) }
func (l *pyroLogger) Debugf(format string, args ...any) { l.debug(format, args) }

func (l *pyroLogger) debug(format string, args []any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("pyroscope: " + fmt.Sprintf(format, args...))
	}
}

func (l *pyroLogger) setQuiet() {
	l.mu.Lock()
	l.quiet = true
	l.mu.Unlock()
}

func (l *pyroLogger) counts() (total, suppressed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.suppressed
}
