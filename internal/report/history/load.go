package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	dto "github.com/prometheus/client_model/go"
)

// Load reads the history Save wrote at path. A missing file is a new,
// empty history; a corrupt one, or one of an unknown format, is a one-line
// error naming the file. The loaded history continues where it stopped:
// the next Observe appends after its last point, at the file's step
// (opts.Step is only a new history's). With smaller opts than
// the saver's, the history is coarsened to MaxPoints and series past
// MaxSeries are dropped (counted in Dropped).
func Load(path string, opts Options) (*History, error) {
	h := New(opts)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}
	defer f.Close()
	limit := h.opts.MaxFileBytes()
	if st, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	} else if st.Size() > limit {
		return nil, fmt.Errorf("load history %s: %d bytes, over the %d a history of these options can take", path, st.Size(), limit)
	}
	if err := h.decode(f, limit); err != nil {
		return nil, fmt.Errorf("load history %s: %s", path, oneLine(err))
	}
	return h, nil
}

// oneLine keeps an error on one line whatever a library put in it.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (h *History) decode(r io.Reader, limit int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	line, err := readLine(br, maxHeaderBytes)
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	// The version first: a later format may change the rest of the header.
	var version struct {
		Format *int `json:"format"`
	}
	if err := json.Unmarshal(line, &version); err != nil || version.Format == nil {
		return errors.New("not a history file (no JSON header line with a format)")
	}
	if *version.Format != formatVersion {
		return fmt.Errorf("unknown format %d (this soakd reads format %d)", *version.Format, formatVersion)
	}
	var hdr fileHeader
	if err := json.Unmarshal(line, &hdr); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	switch {
	case hdr.Compression != compressionZstd:
		return fmt.Errorf("unknown compression %q", hdr.Compression)
	case hdr.StepNS <= 0 || hdr.LatestNS < 0 || hdr.Series < 0 || hdr.Dropped < 0:
		return fmt.Errorf("header: step %d, latest %d, series %d, dropped %d out of range", hdr.StepNS, hdr.LatestNS, hdr.Series, hdr.Dropped)
	case hdr.LatestNS/hdr.StepNS >= maxPointsLimit:
		return fmt.Errorf("header: latest %d is over %d steps of %d", hdr.LatestNS, maxPointsLimit, hdr.StepNS)
	}
	h.step, h.latest, h.dropped = time.Duration(hdr.StepNS), time.Duration(hdr.LatestNS), hdr.Dropped
	for _, e := range hdr.IncarnationsNS {
		if e < 0 || e > hdr.LatestNS {
			return fmt.Errorf("header: incarnation at %d outside the run", e)
		}
		if len(h.incarnations) >= maxIncarnations {
			h.incarnations = slices.Delete(h.incarnations, 1, 2)
		}
		h.incarnations = append(h.incarnations, time.Duration(e))
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderLowmem(true))
	if err != nil {
		return err
	}
	defer zr.Close()
	body := &limitedReader{r: zr, left: limit}
	dec := json.NewDecoder(body)
	for i := range hdr.Series {
		var fs fileSeries
		if err := dec.Decode(&fs); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("corrupt or truncated at series %d of %d: %w", i+1, hdr.Series, err)
		}
		if err := h.addLoaded(fs); err != nil {
			return fmt.Errorf("series %d (%s): %w", i+1, fs.Name, err)
		}
	}
	// Whatever follows the last series is damage; reading to the end also
	// makes zstd check the frame's checksum.
	switch _, err := dec.Token(); {
	case err == nil:
		return fmt.Errorf("corrupt: more than the %d series the header announces", hdr.Series)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("corrupt after the last series: %w", err)
	}
	for h.latest/h.step >= time.Duration(h.opts.MaxPoints) {
		h.coarsen()
	}
	return nil
}

func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		switch {
		case len(line) > limit:
			return nil, fmt.Errorf("longer than %d bytes", limit)
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil, errors.New("empty file")
		case errors.Is(err, io.EOF):
			return nil, errors.New("truncated (no end of line)")
		default:
			return nil, err
		}
	}
}

// limitedReader fails, rather than ends, past its limit, so a body that
// decompresses to more than Save could write is an error, not a cut.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errors.New("decompressed body over the size limit")
	}
	n, err := l.r.Read(p[:min(int64(len(p)), l.left)])
	l.left -= int64(n)
	return n, err
}

// addLoaded checks one series line and adds it; a line over MaxSeries is
// dropped (counted), not an error.
func (h *History) addLoaded(fs fileSeries) error {
	kind, ok := parseKind(fs.Kind)
	if !ok {
		return fmt.Errorf("unknown kind %q", fs.Kind)
	}
	if fs.Name == "" {
		return errors.New("no name")
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range fs.Labels {
			if !yield(n) {
				return
			}
		}
	})
	labels := make([]*dto.LabelPair, len(names))
	for i, n := range names {
		if n == "" {
			return errors.New("empty label name")
		}
		v := fs.Labels[n]
		labels[i] = &dto.LabelPair{Name: &names[i], Value: &v}
	}
	key := Key{Name: fs.Name, Labels: canonicalLabels(labels)}
	switch {
	case len(key.Name)+len(key.Labels) > maxKeyBytes:
		return fmt.Errorf("key over %d bytes", maxKeyBytes)
	case h.series[key.mapKey()] != nil:
		return fmt.Errorf("series %s twice", key)
	case kind != Histogram && fs.Bounds != nil:
		return errors.New("bounds on a " + kind.String())
	case len(fs.Bounds) > MaxBuckets:
		return fmt.Errorf("%d buckets, over %d", len(fs.Bounds), MaxBuckets)
	}
	for i, b := range fs.Bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || (i > 0 && !(b > fs.Bounds[i-1])) {
			return errors.New("bucket bounds not finite and increasing")
		}
	}
	n := len(fs.Start)
	cols, err := fs.columns(kind, n)
	if err != nil {
		return err
	}
	if len(h.series) >= h.opts.MaxSeries {
		h.dropped++
		return nil
	}
	s := &series{key: key, kind: kind, labels: labels, bounds: slices.Clone([]float64(fs.Bounds)), width: widthOf(kind, len(fs.Bounds))}
	s.raw = make([]float64, s.width)
	s.starts, s.cells = make([]int32, n), make([]float64, n*s.width)
	idx, maxIdx := int64(0), int64(h.latest/h.step)
	for i, d := range fs.Start {
		if i == 0 {
			idx = d
		} else if d < 1 {
			return fmt.Errorf("point %d: not after the one before", i)
		} else {
			idx += min(d, maxIdx+1)
		}
		if idx < 0 || idx > maxIdx {
			return fmt.Errorf("point %d: step index %d outside the run (0 to %d)", i, idx, maxIdx)
		}
		s.starts[i] = int32(idx)
		for c, col := range cols {
			s.cells[i*s.width+c] = col[i]
		}
	}
	h.series[key.mapKey()] = s
	return nil
}

// columns lists the series' columns in cells order, each n long.
func (fs fileSeries) columns(kind Kind, n int) ([]floats, error) {
	var cols []floats
	switch kind {
	case Gauge:
		cols = []floats{fs.Min, fs.Max, fs.Sum, fs.Count, fs.Last}
	case Counter:
		cols = []floats{fs.Increase}
	case Histogram:
		if len(fs.Buckets) != len(fs.Bounds) {
			return nil, fmt.Errorf("%d bucket columns for %d bounds", len(fs.Buckets), len(fs.Bounds))
		}
		cols = append([]floats{fs.Count, fs.Sum}, fs.Buckets...)
	}
	for _, c := range cols {
		if len(c) != n {
			return nil, fmt.Errorf("a column of %d values for %d points", len(c), n)
		}
	}
	return cols, nil
}
