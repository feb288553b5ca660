package history

import (
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Key identifies a series: the family name and its labels in canonical
// form (name="value" pairs sorted by name, comma-separated; "" when none).
type Key struct {
	Name   string
	Labels string
}

func (k Key) String() string {
	if k.Labels == "" {
		return k.Name
	}
	return k.Name + "{" + k.Labels + "}"
}

func (k Key) less(o Key) int {
	if c := strings.Compare(k.Name, o.Name); c != 0 {
		return c
	}
	return strings.Compare(k.Labels, o.Labels)
}

func compareLabels(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }

// mapKey is the series map's key: the name, a NUL (never in a metric
// name) and the canonical labels.
func (k Key) mapKey() string { return k.Name + "\x00" + k.Labels }

func appendMapKey(b []byte, name string, labels []*dto.LabelPair) []byte {
	b = append(append(b, name...), 0)
	return appendLabels(b, labels)
}

func canonicalLabels(labels []*dto.LabelPair) string { return string(appendLabels(nil, labels)) }

// appendLabels writes name="value" pairs, values quoted as Go quotes them
// (the common plain value without strconv's rune-by-rune pass).
func appendLabels(b []byte, labels []*dto.LabelPair) []byte {
	for i, l := range labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(b, l.GetName()...), '=')
		if v := l.GetValue(); plain(v) {
			b = append(append(append(b, '"'), v...), '"')
		} else {
			b = strconv.AppendQuote(b, v)
		}
	}
	return b
}

func plain(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func copyLabels(labels []*dto.LabelPair) []*dto.LabelPair {
	out := make([]*dto.LabelPair, len(labels))
	for i, l := range labels {
		name, value := l.GetName(), l.GetValue()
		out[i] = &dto.LabelPair{Name: &name, Value: &value}
	}
	return out
}
