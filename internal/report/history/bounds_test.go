package history

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestWorstCaseWithinBounds fills every series slot with the widest kind,
// the longest keys and the longest numbers, and holds memory and file to
// Options.MaxBytes and Options.MaxFileBytes.
func TestWorstCaseWithinBounds(t *testing.T) {
	opts := Options{Select: []Select{{Name: "h", Kind: Histogram}}, MaxPoints: 16, MaxSeries: 8}
	h := New(opts)
	bounds := make([]float64, MaxBuckets)
	for i := range bounds {
		bounds[i] = -1.2345678901234567e-300 + float64(i)
	}
	long := strings.Repeat("x", maxKeyBytes-20)
	cum := make([]float64, MaxBuckets)
	for step := range 100 {
		var ms []*dto.Metric
		for s := range 2 * opts.MaxSeries { // half of them past the cap
			for i := range cum {
				cum[i] = float64(step * (i + 1) * 1000003)
			}
			ms = append(ms, histMetric(bounds, cum, uint64(step*MaxBuckets*1000003+1), -math.Pi*1e-300*float64(step), "k", fmt.Sprintf("%s%03d", long, s)))
		}
		h.Observe(time.Duration(step)*opts.Step*3, []*dto.MetricFamily{family("h", dto.MetricType_HISTOGRAM, ms...)})
	}
	if h.Len() != opts.MaxSeries || h.Dropped() != 100*int64(opts.MaxSeries) {
		t.Fatalf("%d series, %d dropped", h.Len(), h.Dropped())
	}
	var body bytes.Buffer
	if err := h.encodeBody(&body); err != nil {
		t.Fatal(err)
	}
	t.Logf("memory %d of %d; body %d of %d", h.MemoryBytes(), opts.MaxBytes(), body.Len(), opts.MaxFileBytes())
	if h.MemoryBytes() > opts.MaxBytes() || int64(body.Len()) > opts.MaxFileBytes() {
		t.Fatal("over the bound")
	}
}
