package leakcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/soakd/soakd/internal/fsutil"
)

// Snapshot is a heap and goroutine profile taken at one moment, kept so an
// alert can compare "now" with the start of its window.
type Snapshot struct {
	T         time.Time
	Heap      []byte // gzipped pprof proto, taken right after a GC
	Goroutine []byte
}

// CaptureSnapshot takes a post-GC heap profile and a goroutine profile.
func CaptureSnapshot(now time.Time) (Snapshot, error) {
	s := Snapshot{T: now}
	runtime.GC() // the heap profile describes the last completed GC
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		return s, fmt.Errorf("heap profile: %w", err)
	}
	s.Heap = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		return s, fmt.Errorf("goroutine profile: %w", err)
	}
	s.Goroutine = bytes.Clone(buf.Bytes())
	return s, nil
}

// Baselines is a small ring of snapshots, one every Every, covering at
// least a detection window, so an alert always has a "then" near its
// window's start. Its size is fixed: a few profiles, not a history.
type Baselines struct {
	Every time.Duration
	ring  []Snapshot
	next  int
	n     int
	last  time.Time
}

// NewBaselines keeps enough snapshots, one every window/4, to reach back a
// full window.
func NewBaselines(window time.Duration) *Baselines {
	const perWindow = 4
	return &Baselines{Every: max(window/perWindow, time.Second), ring: make([]Snapshot, perWindow+2)}
}

// Due reports whether a new snapshot should be taken at now.
func (b *Baselines) Due(now time.Time) bool { return b.n == 0 || now.Sub(b.last) >= b.Every }

// Add stores a snapshot, replacing the oldest.
func (b *Baselines) Add(s Snapshot) {
	b.ring[b.next] = s
	b.next = (b.next + 1) % len(b.ring)
	b.n = min(b.n+1, len(b.ring))
	b.last = s.T
}

// At returns the newest snapshot taken at or before t, else the oldest.
func (b *Baselines) At(t time.Time) (Snapshot, bool) {
	if b.n == 0 {
		return Snapshot{}, false
	}
	oldest := (b.next - b.n + len(b.ring)) % len(b.ring)
	best := b.ring[oldest]
	for i := range b.n {
		s := b.ring[(oldest+i)%len(b.ring)]
		if !s.T.After(t) {
			best = s
		}
	}
	return best, true
}

// HeapSite is one allocation site's in-use bytes then and now.
type HeapSite struct {
	Function   string `json:"function"`
	File       string `json:"file"`
	Line       int64  `json:"line"`
	BytesThen  int64  `json:"inuse_bytes_then"`
	BytesNow   int64  `json:"inuse_bytes_now"`
	DeltaBytes int64  `json:"delta_bytes"`
}

// StackGroup is goroutines sharing one stack (or one label value).
type StackGroup struct {
	Key   string   `json:"key"`
	Stack []string `json:"stack,omitempty"`
	Then  int64    `json:"then"`
	Now   int64    `json:"now"`
	Delta int64    `json:"delta"`
}

// Summary is summary.json of an evidence bundle.
type Summary struct {
	AlertID       string       `json:"alert_id"`
	AlertName     string       `json:"alertname"`
	Signal        string       `json:"signal"`
	Node          string       `json:"node,omitempty"` // "": soakd itself
	RunID         string       `json:"run_id"`
	FiredAt       time.Time    `json:"fired_at"`
	BaselineAt    time.Time    `json:"baseline_at"`
	Evaluation    Evaluation   `json:"evaluation"`
	Threshold     float64      `json:"threshold_per_second"`
	TopHeapSites  []HeapSite   `json:"top_heap_sites"`
	TopStacks     []StackGroup `json:"top_goroutine_stacks"`
	ByComponent   []StackGroup `json:"goroutines_by_component"`
	GoroutineLeak *LeakReport  `json:"goroutineleak,omitempty"`
	FaultResidue  []Residue    `json:"fault_residue,omitempty"`
	Files         []string     `json:"files"`
	Notes         []string     `json:"notes,omitempty"`
}

// LeakReport summarises the runtime's goroutineleak profile.
type LeakReport struct {
	Total int64        `json:"total"`
	Top   []StackGroup `json:"top"`
}

// Evidence bounds.
const (
	topN = 10
	// maxStackDepth trims stacks in summaries; the .pb.gz files keep all.
	maxStackDepth = 12
)

// EvidenceInput is what an alert hands to WriteEvidence.
type EvidenceInput struct {
	AlertID, AlertName, Signal, RunID string
	FiredAt                           time.Time
	Evaluation                        Evaluation
	Threshold                         float64
	Base, Now                         Snapshot
	Residue                           []Residue
	// Node is the process the profiles are from ("": soakd itself). A
	// node's goroutineleak profile is GoroutineLeak (nil: its binary has
	// none); soakd's own is looked up here.
	Node          string
	GoroutineLeak []byte
}

// WriteEvidence writes a bundle into dir/<alert-id>/ (built in a temp dir,
// every file fsync'd, then renamed and the rename fsync'd, so a bundle is
// whole or absent and survives a power cut once it is named in an alert)
// and deletes the oldest bundles beyond keep. It returns the bundle's path
// and summary.
func WriteEvidence(dir string, keep int, in EvidenceInput) (string, Summary, error) {
	sum := Summary{AlertID: in.AlertID, AlertName: in.AlertName, Signal: in.Signal, Node: in.Node, RunID: in.RunID,
		FiredAt: in.FiredAt.UTC(), BaselineAt: in.Base.T.UTC(), Evaluation: in.Evaluation, Threshold: in.Threshold,
		FaultResidue: in.Residue}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", sum, err
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return "", sum, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	write := func(name string, data []byte) error {
		if len(data) == 0 {
			return nil
		}
		sum.Files = append(sum.Files, name)
		return fsutil.WriteBytes(filepath.Join(tmp, name), 0o600, data)
	}
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	note(write("heap-then.pb.gz", in.Base.Heap))
	note(write("heap-now.pb.gz", in.Now.Heap))
	note(write("goroutine-then.pb.gz", in.Base.Goroutine))
	note(write("goroutine-now.pb.gz", in.Now.Goroutine))

	if diff, sites, err := heapDiff(in.Base.Heap, in.Now.Heap); err != nil {
		note(fmt.Errorf("heap diff: %w", err))
	} else {
		sum.TopHeapSites = sites
		var buf bytes.Buffer
		if err := diff.Write(&buf); err == nil {
			note(write("heap-diff.pb.gz", buf.Bytes()))
		}
	}
	if stacks, comps, err := goroutineDiff(in.Base.Goroutine, in.Now.Goroutine); err != nil {
		note(fmt.Errorf("goroutine diff: %w", err))
	} else {
		sum.TopStacks, sum.ByComponent = stacks, comps
	}
	leakProf := in.GoroutineLeak
	if p := pprof.Lookup("goroutineleak"); in.Node == "" && p != nil {
		var buf bytes.Buffer
		if err := p.WriteTo(&buf, 0); err != nil {
			note(fmt.Errorf("goroutineleak profile: %w", err))
		}
		leakProf = buf.Bytes()
	}
	if len(leakProf) > 0 {
		note(write("goroutineleak.pb.gz", leakProf))
		if rep, err := leakReport(leakProf); err == nil {
			sum.GoroutineLeak = rep
		}
	} else {
		sum.Notes = append(sum.Notes, "goroutineleak profile not in the binary (build with GOEXPERIMENT=goroutineleakprofile on Go 1.26)")
	}
	sum.Notes = append(sum.Notes, errs...)
	js, _ := json.MarshalIndent(sum, "", "  ")
	sum.Files = append(sum.Files, "summary.json", "summary.txt")
	if err := fsutil.WriteBytes(filepath.Join(tmp, "summary.json"), 0o600, append(js, '\n')); err != nil {
		return "", sum, err
	}
	if err := fsutil.WriteBytes(filepath.Join(tmp, "summary.txt"), 0o600, []byte(summaryText(sum))); err != nil {
		return "", sum, err
	}
	final := filepath.Join(dir, in.AlertID)
	if err := os.Rename(tmp, final); err != nil {
		return "", sum, err
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return final, sum, err
	}
	if err := pruneEvidence(dir, keep); err != nil {
		return final, sum, err
	}
	return final, sum, nil
}

func pruneEvidence(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var bundles []string
	for _, e := range entries {
		switch {
		case e.IsDir() && strings.HasPrefix(e.Name(), ".tmp-"):
			// A bundle half-written when the daemon died.
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		case e.IsDir() && !strings.HasPrefix(e.Name(), "."):
			bundles = append(bundles, e.Name())
		}
	}
	return fsutil.KeepNewest(dir, bundles, keep) // ids start with a UTC timestamp
}

// heapDiff merges now with the negated base: what grew between them.
func heapDiff(base, now []byte) (*profile.Profile, []HeapSite, error) {
	if len(base) == 0 || len(now) == 0 {
		return nil, nil, fmt.Errorf("missing profile")
	}
	pb, pn, err := parsePair(base, now)
	if err != nil {
		return nil, nil, err
	}
	idxB, idxN := sampleIndex(pb, "inuse_space"), sampleIndex(pn, "inuse_space")
	if idxB < 0 || idxN < 0 {
		return nil, nil, fmt.Errorf("no inuse_space sample type")
	}
	then := bySite(pb, idxB)
	nowSites := bySite(pn, idxN)
	pb.Scale(-1)
	diff, err := profile.Merge([]*profile.Profile{pn, pb})
	if err != nil {
		return nil, nil, err
	}
	var sites []HeapSite
	for key, s := range nowSites {
		s.BytesThen = then[key].BytesNow
		s.DeltaBytes = s.BytesNow - s.BytesThen
		sites = append(sites, s)
	}
	for key, s := range then {
		if _, ok := nowSites[key]; !ok {
			sites = append(sites, HeapSite{Function: s.Function, File: s.File, Line: s.Line, BytesThen: s.BytesNow, DeltaBytes: -s.BytesNow})
		}
	}
	sort.Slice(sites, func(i, j int) bool {
		if sites[i].DeltaBytes != sites[j].DeltaBytes {
			return sites[i].DeltaBytes > sites[j].DeltaBytes
		}
		return sites[i].Function < sites[j].Function
	})
	return diff, sites[:min(topN, len(sites))], nil
}

func sampleIndex(p *profile.Profile, typ string) int {
	for i, st := range p.SampleType {
		if st.Type == typ {
			return i
		}
	}
	return -1
}

// bySite sums a sample value by allocation site: the first frame outside
// the runtime, which is the code that asked for the memory.
func bySite(p *profile.Profile, idx int) map[string]HeapSite {
	out := map[string]HeapSite{}
	for _, s := range p.Sample {
		fn, file, line := allocSite(s)
		key := fmt.Sprintf("%s %s:%d", fn, file, line)
		h := out[key]
		h.Function, h.File, h.Line = fn, file, line
		h.BytesNow += s.Value[idx]
		out[key] = h
	}
	return out
}

func allocSite(s *profile.Sample) (string, string, int64) {
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			if strings.HasPrefix(ln.Function.Name, "runtime.") {
				continue
			}
			return ln.Function.Name, ln.Function.Filename, ln.Line
		}
	}
	return "unknown", "", 0
}

func stackOf(s *profile.Sample) []string {
	var st []string
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function != nil {
				st = append(st, ln.Function.Name)
			}
		}
	}
	return st
}

// parsePair parses the profiles taken then and now.
func parsePair(base, now []byte) (*profile.Profile, *profile.Profile, error) {
	pb, err := profile.ParseData(base)
	if err != nil {
		return nil, nil, fmt.Errorf("then: %w", err)
	}
	pn, err := profile.ParseData(now)
	if err != nil {
		return nil, nil, fmt.Errorf("now: %w", err)
	}
	return pb, pn, nil
}

// goroutineDiff groups goroutines by stack and by the component label,
// then and now, largest growth first.
func goroutineDiff(base, now []byte) (stacks, comps []StackGroup, err error) {
	pb, pn, err := parsePair(base, now)
	if err != nil {
		return nil, nil, err
	}
	type agg struct {
		stack     []string
		then, now int64
	}
	byStack, byComp := map[string]*agg{}, map[string]*agg{}
	add := func(p *profile.Profile, isNow bool) {
		for _, s := range p.Sample {
			st := stackOf(s)
			key := strings.Join(st, " < ")
			comp := "none"
			if v := s.Label["component"]; len(v) > 0 {
				comp = v[0]
			}
			for _, m := range []struct {
				m map[string]*agg
				k string
			}{{byStack, key}, {byComp, comp}} {
				a := m.m[m.k]
				if a == nil {
					a = &agg{stack: st}
					m.m[m.k] = a
				}
				if isNow {
					a.now += s.Value[0]
				} else {
					a.then += s.Value[0]
				}
			}
		}
	}
	add(pb, false)
	add(pn, true)
	toGroups := func(m map[string]*agg, withStack bool) []StackGroup {
		out := make([]StackGroup, 0, len(m))
		for k, a := range m {
			g := StackGroup{Key: k, Then: a.then, Now: a.now, Delta: a.now - a.then}
			if withStack {
				g.Key = firstNonRuntime(a.stack)
				g.Stack = a.stack[:min(len(a.stack), maxStackDepth)]
			}
			out = append(out, g)
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Delta != out[j].Delta {
				return out[i].Delta > out[j].Delta
			}
			return out[i].Key < out[j].Key
		})
		return out
	}
	stacks = toGroups(byStack, true)
	return stacks[:min(topN, len(stacks))], toGroups(byComp, false), nil
}

func firstNonRuntime(stack []string) string {
	for _, f := range stack {
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/") {
			return f
		}
	}
	if len(stack) > 0 {
		return stack[0]
	}
	return "unknown"
}

func leakReport(data []byte) (*LeakReport, error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, err
	}
	rep := &LeakReport{}
	groups := map[string]*StackGroup{}
	for _, s := range p.Sample {
		st := stackOf(s)
		key := strings.Join(st, " < ")
		g := groups[key]
		if g == nil {
			g = &StackGroup{Key: firstNonRuntime(st), Stack: st[:min(len(st), maxStackDepth)]}
			groups[key] = g
		}
		g.Now += s.Value[0]
		g.Delta = g.Now
		rep.Total += s.Value[0]
	}
	for _, g := range groups {
		rep.Top = append(rep.Top, *g)
	}
	sort.Slice(rep.Top, func(i, j int) bool { return rep.Top[i].Now > rep.Top[j].Now })
	rep.Top = rep.Top[:min(topN, len(rep.Top))]
	return rep, nil
}

func summaryText(s Summary) string {
	var b strings.Builder
	who := ""
	if s.Node != "" {
		who = " of node " + s.Node
	}
	fmt.Fprintf(&b, "%s on %s%s (run %s) fired at %s\n", s.AlertName, s.Signal, who, s.RunID, s.FiredAt.Format(time.RFC3339))
	fmt.Fprintf(&b, "slope %.4g/s (lower bound %.4g/s at the configured confidence) over %d samples; threshold %.4g/s\n",
		s.Evaluation.Slope, s.Evaluation.Lower, s.Evaluation.N, s.Threshold)
	fmt.Fprintf(&b, "compared with the baseline at %s\n\n", s.BaselineAt.Format(time.RFC3339))
	fmt.Fprintln(&b, "top growing allocation sites (in-use bytes):")
	for _, h := range s.TopHeapSites[:min(5, len(s.TopHeapSites))] {
		fmt.Fprintf(&b, "  %+12d  %s (%s:%d)\n", h.DeltaBytes, h.Function, filepath.Base(h.File), h.Line)
	}
	fmt.Fprintln(&b, "\ntop growing goroutine stacks:")
	for _, g := range s.TopStacks[:min(5, len(s.TopStacks))] {
		fmt.Fprintf(&b, "  %+6d  (%d → %d)  %s\n", g.Delta, g.Then, g.Now, g.Key)
	}
	fmt.Fprintln(&b, "\ngoroutines by component label:")
	for _, g := range s.ByComponent {
		fmt.Fprintf(&b, "  %-12s %d → %d\n", g.Key, g.Then, g.Now)
	}
	if s.GoroutineLeak != nil {
		fmt.Fprintf(&b, "\ngoroutineleak profile: %d goroutines blocked on unreachable primitives\n", s.GoroutineLeak.Total)
		for _, g := range s.GoroutineLeak.Top[:min(5, len(s.GoroutineLeak.Top))] {
			fmt.Fprintf(&b, "  %6d  %s\n", g.Now, g.Key)
		}
	}
	for _, r := range s.FaultResidue {
		fmt.Fprintf(&b, "\nfault %s left residue after %d of %d injections\n", r.Kind, r.WithResidue, r.Injections)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "\nnote: %s\n", n)
	}
	fmt.Fprintln(&b, "\nopen with: go tool pprof -top heap-diff.pb.gz   (or -http=: for the flame graph)")
	return b.String()
}
