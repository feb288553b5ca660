package leakcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// Target is a process the leak checker soaks beside soakd itself: a node
// process soakd supervises, or one it only reaches over the network (a pod,
// or any Go process that serves net/http/pprof).
type Target struct {
	// Component and Node name it in alerts and metrics (labels component
	// and node): "raft" and "node-1". Component is empty for a process no
	// component runs (leakcheck.targets).
	Component, Node string
	// PprofURL is the base of its net/http/pprof handlers, ending in
	// "/debug/pprof/".
	PprofURL string
	// MetricsURL, if set, is its Prometheus /metrics, read for descriptors,
	// resident memory, threads and start time where procfs cannot be
	// (client_golang's process and Go collectors).
	MetricsURL string
	// PID returns the process's pid where it runs on this machine (0: it
	// is down), so procfs is read; nil for a remote process.
	PID func() int
}

// maxProfileBytes bounds what a target's handler may send: a profile of a
// process with a pathological number of stacks is cut off with an error,
// not read into memory whole.
const maxProfileBytes = 64 << 20

// targetSampler reads a Target's signals over HTTP and procfs. It holds
// nothing between reads but its client.
type targetSampler struct {
	client *http.Client
}

// targetReading is one sample of a target. Process says the process
// signals (descriptors, RSS, threads) were read: a remote target without
// MetricsURL has only the heap and goroutines.
type targetReading struct {
	Reading
	Process bool
}

// Value is the named signal, if it was read.
func (r targetReading) Value(signal string) (float64, bool) {
	switch signal {
	case SignalFDs, SignalRSS, SignalThreads:
		if !r.Process {
			return 0, false
		}
	}
	return r.Reading.Value(signal)
}

// read samples t's signals at now. incarnation identifies the process
// (its pid or start time; "" where neither can be had): a change is a
// restart, after which its windows start again.
func (s *targetSampler) read(ctx context.Context, t Target, now time.Time) (r targetReading, incarnation string, err error) {
	r.T = now
	pid := 0
	if t.PID != nil {
		if pid = t.PID(); pid == 0 {
			return r, "", errors.New("the process is down")
		}
		incarnation = strconv.Itoa(pid)
	}
	// gc=1: the heap figures describe a GC that has just completed, the
	// live heap, as soakd's own heap signal does.
	heap, err := s.get(ctx, t.PprofURL+"heap?gc=1&debug=1")
	if err != nil {
		return r, incarnation, err
	}
	if r.HeapLive, err = memStat(heap, "HeapAlloc"); err != nil {
		return r, incarnation, fmt.Errorf("%sheap: %w", t.PprofURL, err)
	}
	r.HeapFresh = true
	r.HeapObjects, _ = memStat(heap, "HeapObjects")
	gr, err := s.get(ctx, t.PprofURL+"goroutine?debug=1")
	if err != nil {
		return r, incarnation, err
	}
	if r.Goroutines, err = goroutineTotal(gr); err != nil {
		return r, incarnation, fmt.Errorf("%sgoroutine: %w", t.PprofURL, err)
	}
	switch {
	case pid != 0:
		p, err := procfs.NewProc(pid)
		if err != nil {
			return r, incarnation, fmt.Errorf("procfs: %w", err)
		}
		fds, err := p.FileDescriptorsLen()
		if err != nil {
			return r, incarnation, fmt.Errorf("procfs: %w", err)
		}
		st, err := p.Stat()
		if err != nil {
			return r, incarnation, fmt.Errorf("procfs: %w", err)
		}
		r.FDs, r.RSS, r.Threads = float64(fds), float64(st.ResidentMemory()), float64(st.NumThreads)
		r.Process = true
		if t.MetricsURL != "" {
			// The memory it maps for the system it runs (a migration
			// host's guests) is not a leak: as soakd's own RSS signal.
			m, err := s.get(ctx, t.MetricsURL)
			if err != nil {
				return r, incarnation, err
			}
			vals, err := gaugeValues(m, OffheapResidentMetric)
			if err != nil {
				return r, incarnation, fmt.Errorf("%s: %w", t.MetricsURL, err)
			}
			r.RSS -= vals[0]
		}
	case t.MetricsURL != "":
		m, err := s.get(ctx, t.MetricsURL)
		if err != nil {
			return r, incarnation, err
		}
		vals, err := gaugeValues(m, "process_open_fds", "process_resident_memory_bytes", "go_threads", "process_start_time_seconds",
			OffheapResidentMetric)
		if err != nil {
			return r, incarnation, fmt.Errorf("%s: %w", t.MetricsURL, err)
		}
		r.FDs, r.RSS, r.Threads = vals[0], vals[1]-vals[4], vals[2]
		r.Process = vals[0] > 0 // the process collector is there (a process has at least stdin..stderr)
		if vals[3] > 0 {
			incarnation = strconv.FormatFloat(vals[3], 'f', -1, 64)
		}
	}
	return r, incarnation, nil
}

// OffheapResidentMetric is the gauge a node process exports for the
// resident part of the memory it maps outside the Go heap for the system
// it runs (package offheap: a migration host's guests); the RSS signal of
// a target subtracts it when the target exports it.
const OffheapResidentMetric = "soakd_offheap_resident_bytes"

// snapshot takes t's post-GC heap and goroutine profiles, for evidence.
func (s *targetSampler) snapshot(ctx context.Context, t Target, now time.Time) (Snapshot, error) {
	snap := Snapshot{T: now}
	var err error
	if snap.Heap, err = s.get(ctx, t.PprofURL+"heap?gc=1"); err != nil {
		return snap, err
	}
	snap.Goroutine, err = s.get(ctx, t.PprofURL+"goroutine")
	return snap, err
}

// leakProfile is t's goroutineleak profile; nil when its binary has none
// (net/http/pprof answers 404 for a profile it does not know).
func (s *targetSampler) leakProfile(ctx context.Context, t Target) ([]byte, error) {
	b, err := s.get(ctx, t.PprofURL+"goroutineleak")
	var se statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return nil, nil
	}
	return b, err
}

type statusError struct {
	url  string
	code int
}

func (e statusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.url, e.code, http.StatusText(e.code))
}

func (s *targetSampler) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, statusError{url: url, code: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProfileBytes+1))
	if err == nil && len(b) > maxProfileBytes {
		err = fmt.Errorf("GET %s: more than %d bytes", url, maxProfileBytes)
	}
	return b, err
}

// memStat finds "# name = N" in a debug=1 heap profile, where
// net/http/pprof prints runtime.MemStats.
func memStat(profile []byte, name string) (float64, error) {
	prefix := "# " + name + " = "
	sc := bufio.NewScanner(bytes.NewReader(profile))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %q in the profile (not a Go heap profile with debug=1?)", strings.TrimSpace(prefix))
}

// goroutineTotal reads "goroutine profile: total N", the first line of a
// debug=1 goroutine profile.
func goroutineTotal(profile []byte) (float64, error) {
	line, _, _ := strings.Cut(string(profile), "\n")
	v, ok := strings.CutPrefix(line, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("first line %q is not a goroutine profile's", line)
	}
	return strconv.ParseFloat(strings.TrimSpace(v), 64)
}

// gaugeValues reads the named unlabelled gauges from a Prometheus text
// exposition; a missing one is 0.
func gaugeValues(text []byte, names ...string) ([]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(names))
	for i, n := range names {
		f, ok := fams[n]
		if !ok || len(f.GetMetric()) == 0 {
			continue
		}
		m := f.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			out[i] = m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			out[i] = m.GetUntyped().GetValue()
		case m.GetCounter() != nil:
			out[i] = m.GetCounter().GetValue()
		}
	}
	return out, nil
}
