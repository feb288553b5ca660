package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AlertNameLabel is the label that carries Alert.Name on the wire.
const AlertNameLabel = "alertname"

// Alert is one alert's state: firing while EndsAt is zero, resolved once it
// is set.
type Alert struct {
	Name         string            // alertname: SoakdHeapLeak, SoakdGoroutineLeak, SoakdFDLeak, ...
	Labels       map[string]string // severity, run_id, signal, ... (alertname is added from Name)
	Annotations  map[string]string // summary, description, evidence
	StartsAt     time.Time
	EndsAt       time.Time // zero while firing; set when resolved
	GeneratorURL string
}

// Firing reports whether the alert is firing, that is EndsAt is zero.
func (a Alert) Firing() bool { return a.EndsAt.IsZero() }

// Status is "firing" or "resolved".
func (a Alert) Status() string {
	if a.Firing() {
		return "firing"
	}
	return "resolved"
}

// Key is the alert's stable identity: its name and its labels sorted by
// name, as in Name{a="1",b="2"}. Labels with empty values and an alertname
// label are ignored (Name wins), as Alertmanager does.
func (a Alert) Key() string {
	names := make([]string, 0, len(a.Labels))
	for k, v := range a.Labels {
		if k == AlertNameLabel || v == "" {
			continue
		}
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(a.Name)
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(a.Labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// LabelSet returns a new map of the alert's labels with alertname set from
// Name; labels with empty values are left out.
func (a Alert) LabelSet() map[string]string {
	out := make(map[string]string, len(a.Labels)+1)
	for k, v := range a.Labels {
		if v != "" {
			out[k] = v
		}
	}
	out[AlertNameLabel] = a.Name
	return out
}

// fingerprint is a short stable hash of Key, for receivers that dedupe.
func (a Alert) fingerprint() string {
	sum := sha256.Sum256([]byte(a.Key()))
	return hex.EncodeToString(sum[:8])
}

// clone returns a with its own copies of the maps, alertname folded into
// Name and empty label values dropped.
func (a Alert) clone() Alert {
	if a.Name == "" {
		a.Name = a.Labels[AlertNameLabel]
	}
	labels := make(map[string]string, len(a.Labels))
	for k, v := range a.Labels {
		if k != AlertNameLabel && v != "" {
			labels[k] = v
		}
	}
	a.Labels = labels
	a.Annotations = maps.Clone(a.Annotations)
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	return a
}

// sameState reports whether a and b describe the same firing alert, so that
// notifying b after a is not a state change.
func sameState(a, b Alert) bool {
	return a.Name == b.Name && a.Firing() == b.Firing() &&
		a.StartsAt.Equal(b.StartsAt) && a.EndsAt.Equal(b.EndsAt) &&
		a.GeneratorURL == b.GeneratorURL &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}

// snippet returns at most n bytes of b as a printable one-line string.
func snippet(b []byte, n int) string {
	truncated := len(b) > n
	if truncated {
		b = b[:n]
	}
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Join(strings.Fields(s), " ")
	if truncated {
		s += "…"
	}
	return s
}
