package history

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	dto "github.com/prometheus/client_model/go"
)

var fileSelect = []Select{{Name: "g", Kind: Gauge}, {Name: "c", Kind: Counter}, {Name: "h", Kind: Histogram}}

func sampleGather(g, c float64, hc []float64) []*dto.MetricFamily {
	return []*dto.MetricFamily{
		family("g", dto.MetricType_GAUGE, gaugeMetric(g, "k", "v")),
		family("c", dto.MetricType_COUNTER, counterMetric(c, "component", "raft")),
		family("h", dto.MetricType_HISTOGRAM, histMetric([]float64{0.1, 1}, hc, uint64(hc[len(hc)-1]+1), 2*c)),
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	h, err := Load(filepath.Join(t.TempDir(), "none"), Options{})
	if err != nil || h.Len() != 0 || len(h.Incarnations()) != 0 || h.Step() != DefaultStep {
		t.Fatalf("Load of a missing file: %v, %d series, step %v", err, h.Len(), h.Step())
	}
}

// TestResume records, saves, loads as a new process does, and goes on with
// a counter that restarted low: its increase is the raw value since the
// restart, not a negative jump and not lost.
func TestResume(t *testing.T) {
	opts := Options{Select: fileSelect, Step: 10 * time.Second, MaxPoints: 8}
	path := filepath.Join(t.TempDir(), "history")
	h := New(opts)
	h.Observe(0, sampleGather(1, 100, []float64{1, 2}))              // baseline
	h.Observe(10*time.Second, sampleGather(2, 130, []float64{3, 5})) // +30
	h.Observe(20*time.Second, sampleGather(3, 150, []float64{4, 9})) // +20
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	before := h.Series()

	h, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Series(), before) {
		t.Fatalf("loaded series differ:\n%v\n%v", h.Series(), before)
	}
	h.Restarted(25 * time.Second)
	h.Observe(30*time.Second, sampleGather(4, 7, []float64{1, 1})) // +7 since the restart
	h.Observe(40*time.Second, sampleGather(5, 9, []float64{1, 2})) // +2

	want := map[time.Duration]float64{0: 0, 10 * time.Second: 30, 20 * time.Second: 20, 30 * time.Second: 7, 40 * time.Second: 2}
	for _, s := range h.Series() {
		if s.Key.Name == "c" {
			if len(s.Points) != len(want) {
				t.Fatalf("counter points %+v", s.Points)
			}
			for _, p := range s.Points {
				if p.Increase != want[p.Start] {
					t.Errorf("counter at %v: +%v, want +%v", p.Start, p.Increase, want[p.Start])
				}
			}
		}
		if s.Key.Name == "h" {
			last := s.Points[len(s.Points)-2] // the first after the restart: all of it
			if last.Count != 2 || last.Buckets[0] != 1 || last.Buckets[1] != 1 {
				t.Errorf("histogram after the restart: %+v", last)
			}
		}
	}
	if got := h.Incarnations(); !reflect.DeepEqual(got, []time.Duration{0, 25 * time.Second}) {
		t.Errorf("incarnations %v, want [0s 25s]", got)
	}
	// The second save round-trips the incarnations too.
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Incarnations(), h.Incarnations()) || !reflect.DeepEqual(l.Series(), h.Series()) {
		t.Error("second round trip differs")
	}
}

// TestLoadSmallerOptions loads a history into tighter bounds: it is
// coarsened to fit, and series past the cap are dropped and counted.
func TestLoadSmallerOptions(t *testing.T) {
	h := New(Options{Select: fileSelect, Step: time.Second, MaxPoints: 100})
	for i := range 100 {
		h.Observe(time.Duration(i)*time.Second, sampleGather(float64(i), float64(i), []float64{0, float64(i)}))
	}
	path := filepath.Join(t.TempDir(), "history")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path, Options{Select: fileSelect, MaxPoints: 10, MaxSeries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if l.Step() != 16*time.Second || l.Len() != 2 || l.Dropped() != 1 {
		t.Fatalf("step %v, %d series, %d dropped; want 16s, 2, 1", l.Step(), l.Len(), l.Dropped())
	}
	for _, s := range l.Series() {
		if len(s.Points) > 10 {
			t.Errorf("%s: %d points", s.Key, len(s.Points))
		}
	}
}

func TestLoadBadFiles(t *testing.T) {
	h := New(Options{Select: fileSelect})
	h.Observe(0, sampleGather(1, 1, []float64{1, 1}))
	h.Observe(time.Minute, sampleGather(2, 5, []float64{1, 3}))
	good, err := h.marshal()
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := bytes.Cut(good, []byte("\n"))
	compress := func(s string) string {
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		defer enc.Close()
		return string(enc.EncodeAll([]byte(s), nil))
	}
	hdr := func(series int) string {
		return `{"format":1,"compression":"zstd","step_ns":10000000000,"latest_ns":60000000000,"series":` + string(rune('0'+series)) + "}\n"
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-5] ^= 0xff
	cases := []struct {
		name, data, want string
	}{
		{"empty", "", "empty file"},
		{"not json", "hello\nworld", "not a history file"},
		{"no format", `{"step_ns":1}` + "\n", "not a history file"},
		{"future format", `{"format":2,"whatever":[1]}` + "\n", "unknown format 2 (this soakd reads format 1)"},
		{"header cut", string(header), "truncated"},
		{"body cut", string(good[:len(good)-20]), "series"},
		{"body flipped", string(flipped), "series"},
		{"no body", string(header) + "\n", "series 1 of 3"},
		{"body not zstd", string(header) + "\n" + "plain text", "series 1 of 3"},
		{"extra data", string(header) + "\n" + string(body) + compress("{}\n"), "more than the 3 series"},
		{"bad compression", `{"format":1,"compression":"lz4","step_ns":1}` + "\n", `unknown compression "lz4"`},
		{"bad step", `{"format":1,"compression":"zstd","step_ns":0}` + "\n", "out of range"},
		{"bad kind", hdr(1) + compress(`{"name":"x","kind":"summary","start":[]}`), `series 1 (x): unknown kind "summary"`},
		{"short column", hdr(1) + compress(`{"name":"x","kind":"counter","start":[0,1],"increase":[1]}`), "a column of 1 values for 2 points"},
		{"points out of order", hdr(1) + compress(`{"name":"x","kind":"counter","start":[3,0],"increase":[1,2]}`), "not after the one before"},
		{"point after latest", hdr(1) + compress(`{"name":"x","kind":"counter","start":[7],"increase":[1]}`), "outside the run"},
		{"bounds unsorted", hdr(1) + compress(`{"name":"x","kind":"histogram","bounds":[2,1],"start":[0],"count":[1],"sum":[1],"buckets":[[1],[1]]}`), "not finite and increasing"},
		{"not numbers", hdr(1) + compress(`{"name":"x","kind":"counter","start":[0],"increase":["a"]}`), "not a number"},
		{"twice", hdr(2) + compress(`{"name":"x","kind":"counter","start":[0],"increase":[1]}`+"\n"+`{"name":"x","kind":"counter","start":[0],"increase":[1]}`), "twice"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, Options{Select: fileSelect})
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s and saying %q", msg, path, tc.want)
			}
		})
	}
}

// TestLoadTooLarge refuses, before reading it, a file larger than any
// history of the options could be.
func TestLoadTooLarge(t *testing.T) {
	opts := Options{MaxPoints: 1, MaxSeries: 1}
	path := filepath.Join(t.TempDir(), "history")
	if err := os.WriteFile(path, make([]byte, opts.MaxFileBytes()+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, opts); err == nil || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("err %v", err)
	}
}

// TestNonFiniteRoundTrip: a sum that overflowed saves and loads back.
func TestNonFiniteRoundTrip(t *testing.T) {
	h := New(Options{Select: fileSelect})
	h.Observe(0, []*dto.MetricFamily{family("g", dto.MetricType_GAUGE, gaugeMetric(1.7e308))})
	h.Observe(time.Second, []*dto.MetricFamily{family("g", dto.MetricType_GAUGE, gaugeMetric(1.7e308))})
	l := reload(t, h)
	p := l.Series()[0].Points[0]
	if p.Count != 2 || !math.IsInf(p.Sum, 1) || p.Max != 1.7e308 {
		t.Fatalf("point %+v", p)
	}
}
