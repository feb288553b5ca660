package history

import (
	"bytes"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Hand-built gather results, shaped as client_golang's Gather shapes them.

func family(name string, typ dto.MetricType, ms ...*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: ms}
}

func labelPairs(kv ...string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return out
}

func gaugeMetric(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labelPairs(kv...), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
}

func counterMetric(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labelPairs(kv...), Counter: &dto.Counter{Value: proto.Float64(v)}}
}

// histMetric takes cumulative bucket counts for bounds.
func histMetric(bounds, cumulative []float64, count uint64, sum float64, kv ...string) *dto.Metric {
	h := &dto.Histogram{SampleCount: proto.Uint64(count), SampleSum: proto.Float64(sum)}
	for i, ub := range bounds {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(uint64(cumulative[i]))})
	}
	return &dto.Metric{Label: labelPairs(kv...), Histogram: h}
}

// reload is Save then Load, in memory.
func reload(t testing.TB, h *History) *History {
	t.Helper()
	data, err := h.marshal()
	if err != nil {
		t.Fatal(err)
	}
	l := New(h.opts)
	if err := l.decode(bytes.NewReader(data), h.opts.MaxFileBytes()); err != nil {
		t.Fatal(err)
	}
	return l
}
