package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/soakd/soakd/internal/fsutil"
)

// The file is one JSON header line (readable with head -1), then a zstd
// frame of JSON lines, one per series, columns rather than rows: each
// column (a gauge's mins, a bucket's increases) is a slowly varying
// sequence of short numbers, which zstd compresses well.
const (
	formatVersion   = 1
	compressionZstd = "zstd"
	// maxHeaderBytes caps the header line (incarnations dominate it).
	maxHeaderBytes = 1 << 20
	// maxNumberBytes is the longest float strconv writes ('g', -1): 24,
	// plus a comma.
	maxNumberBytes = 25
)

// MaxFileBytes bounds what Save writes with these options: the header and
// every series full and at its widest, as uncompressed text. Load refuses
// a file, or a decompressed body, larger than this.
func (o Options) MaxFileBytes() int64 {
	o = o.withDefaults()
	perSeries := int64(3*maxKeyBytes + (MaxBuckets+8)*16 + 200) // name, labels, kind, bounds, keys
	perPoint := int64(MaxBuckets+5) * maxNumberBytes
	return maxHeaderBytes + int64(o.MaxSeries)*(perSeries+int64(o.MaxPoints)*perPoint)
}

type fileHeader struct {
	Format      int    `json:"format"`
	Compression string `json:"compression"`
	StepNS      int64  `json:"step_ns"`
	LatestNS    int64  `json:"latest_ns"`
	// IncarnationsNS are the incarnations' start elapsed times.
	IncarnationsNS []int64 `json:"incarnations_ns"`
	Dropped        int64   `json:"dropped"`
	Series         int     `json:"series"`
}

// fileSeries is one series line. Start holds the first point's step index,
// then the gap to each next one (mostly 1s).
type fileSeries struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Kind     string            `json:"kind"`
	Bounds   floats            `json:"bounds,omitempty"`
	Start    []int64           `json:"start"`
	Min      floats            `json:"min,omitempty"`
	Max      floats            `json:"max,omitempty"`
	Last     floats            `json:"last,omitempty"`
	Count    floats            `json:"count,omitempty"`
	Sum      floats            `json:"sum,omitempty"`
	Increase floats            `json:"increase,omitempty"`
	Buckets  []floats          `json:"buckets,omitempty"`
}

// Save writes the history to path atomically (fsutil.WriteFile): a crash
// leaves the previous file or the new one, whole. Baselines are not saved:
// a loaded history's first sample of each series sets them again.
func (h *History) Save(path string) error {
	data, err := h.marshal()
	if err != nil {
		return fmt.Errorf("save history %s: %w", path, err)
	}
	return writeFile(path, data)
}

func writeFile(path string, data []byte) error {
	if err := fsutil.WriteBytes(path, 0o600, data); err != nil {
		return fmt.Errorf("save history %s: %w", path, err)
	}
	return nil
}

// marshal is the file's content: under 1 MiB for a 72-hour run.
func (h *History) marshal() ([]byte, error) {
	var b bytes.Buffer
	err := h.encode(&b, zstd.SpeedBetterCompression)
	return b.Bytes(), err
}

func (h *History) encode(w io.Writer, level zstd.EncoderLevel) error {
	hdr := fileHeader{Format: formatVersion, Compression: compressionZstd, StepNS: int64(h.step),
		LatestNS: int64(h.latest), Dropped: h.dropped, Series: len(h.series)}
	for _, e := range h.incarnations {
		hdr.IncarnationsNS = append(hdr.IncarnationsNS, int64(e))
	}
	line, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return err
	}
	zw, err := getEncoder(w, level)
	if err != nil {
		return err
	}
	defer func() {
		zw.Reset(io.Discard) // the pool must not keep w alive
		encoders[level].Put(zw)
	}()
	if err := h.encodeBody(zw); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// encoders pools zstd encoders by level (an encoder's tables are a few
// MiB): reused while saves are frequent, freed by the GC when they are
// not. With concurrency 1 an encoder starts no goroutine.
var encoders = map[zstd.EncoderLevel]*sync.Pool{
	zstd.SpeedFastest: {}, zstd.SpeedDefault: {}, zstd.SpeedBetterCompression: {}, zstd.SpeedBestCompression: {},
}

func getEncoder(w io.Writer, level zstd.EncoderLevel) (*zstd.Encoder, error) {
	if zw, ok := encoders[level].Get().(*zstd.Encoder); ok {
		zw.Reset(w)
		return zw, nil
	}
	return zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
}

// encodeBody writes the series lines, uncompressed.
func (h *History) encodeBody(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, s := range h.Series() {
		if err := enc.Encode(toFile(s)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func toFile(s Series) fileSeries {
	f := fileSeries{Name: s.Key.Name, Kind: s.Kind.String(), Bounds: s.Bounds, Start: make([]int64, len(s.Points))}
	if len(s.Labels) > 0 {
		f.Labels = s.Labels
	}
	prev := int64(0)
	for i, p := range s.Points {
		idx := int64(p.Start / s.Step)
		f.Start[i], prev = idx-prev, idx
	}
	col := func(get func(Point) float64) floats {
		c := make(floats, len(s.Points))
		for i, p := range s.Points {
			c[i] = get(p)
		}
		return c
	}
	switch s.Kind {
	case Gauge:
		f.Min, f.Max, f.Last = col(func(p Point) float64 { return p.Min }), col(func(p Point) float64 { return p.Max }), col(func(p Point) float64 { return p.Last })
		f.Count, f.Sum = col(func(p Point) float64 { return p.Count }), col(func(p Point) float64 { return p.Sum })
	case Counter:
		f.Increase = col(func(p Point) float64 { return p.Increase })
	case Histogram:
		f.Count, f.Sum = col(func(p Point) float64 { return p.Count }), col(func(p Point) float64 { return p.Sum })
		for b := range s.Bounds {
			f.Buckets = append(f.Buckets, col(func(p Point) float64 { return p.Buckets[b] }))
		}
	}
	return f
}

// floats is a JSON array of numbers written in their shortest exact form;
// the values JSON has no number for (NaN, ±Inf: a sum that overflowed)
// are written as strings, so a save never fails on them.
type floats []float64

func (f floats) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(f)*8)
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = strconv.AppendQuote(b, strconv.FormatFloat(v, 'g', -1, 64))
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return append(b, ']'), nil
}

func (f *floats) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*f = nil
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errors.New("not an array of numbers")
	}
	inner := bytes.TrimSpace(b[1 : len(b)-1])
	out := make(floats, 0, bytes.Count(inner, []byte{','})+1)
	for tok := range bytes.SplitSeq(inner, []byte{','}) {
		if len(inner) == 0 {
			break
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) >= 2 && tok[0] == '"' {
			tok = tok[1 : len(tok)-1]
		}
		v, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return fmt.Errorf("not a number: %.20q", tok)
		}
		out = append(out, v)
	}
	*f = out
	return nil
}
