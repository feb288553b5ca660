package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"
)

// The unit types below decode from YAML scalars written for humans and encode
// back to a string that decodes to exactly the same value, so a config can be
// dumped (e.g. by `soakd plan`) and read again without drift.

// Duration is a non-negative time.Duration written as a Go duration ("90s",
// "1h30m", "72h") or with a day suffix ("3d", "1d12h").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// ParseDuration parses a Duration; see Duration for the syntax.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	bad := fmt.Errorf("cannot parse %q as a duration (e.g. 30s, 1h30m, 3d)", s)
	var days time.Duration
	rest := s
	// time.ParseDuration has no day unit; a soak is planned in days.
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 64)
		if err != nil || n > uint64(math.MaxInt64/int64(24*time.Hour)) {
			return 0, bad
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = s[i+1:]
		if rest == "" {
			return Duration(days), nil
		}
		if rest[0] == '+' || rest[0] == '-' {
			return 0, bad
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, bad
	}
	if d > math.MaxInt64-days {
		return 0, bad
	}
	return Duration(days + d), nil
}

// String renders d as a Go duration without zero trailing units ("72h",
// "1h30m", "5m"), which ParseDuration reads back exactly.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a duration")
	if err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ByteSize is a number of bytes written as a plain integer ("4096") or with
// an IEC or SI unit ("256MiB", "1GiB", "10MB").
type ByteSize int64

// Bytes returns b as a byte count.
func (b ByteSize) Bytes() int64 { return int64(b) }

// ParseByteSize parses a ByteSize; see ByteSize for the syntax.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	v, err := parseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q as a byte size (e.g. 4096, 512MiB, 1GiB)", s)
	}
	return ByteSize(v), nil
}

// parseBytes wraps humanize.ParseBytes, which returns uint64, and rejects
// what does not fit an int64.
func parseBytes(s string) (int64, error) {
	v, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt64 {
		return 0, errors.New("too large")
	}
	return int64(v), nil
}

var binaryUnits = []struct {
	name string
	size int64
}{{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// String renders b exactly, in the largest binary unit that divides it.
func (b ByteSize) String() string { return formatBytes(int64(b), 1) }

// formatBytes renders n in the largest binary unit of at least min bytes
// that divides it exactly, else as a plain integer.
func formatBytes(n, min int64) string {
	if n > 0 {
		for _, u := range binaryUnits {
			if u.size >= min && n%u.size == 0 {
				return strconv.FormatInt(n/u.size, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a byte size")
	if err != nil {
		return err
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// Rate is an amount per second, written "<amount>/<unit>": the amount is a
// plain number or a byte size, the unit s|sec|m|min|h|hour ("2MiB/s",
// "1MiB/min", "10/min").
type Rate float64

// PerSecond returns r as an amount per second.
func (r Rate) PerSecond() float64 { return float64(r) }

var rateUnits = map[string]float64{"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}

// ParseRate parses a Rate; see Rate for the syntax.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("cannot parse %q as a rate (e.g. 2MiB/s, 1MiB/min, 10/min)", s)
	qty, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, bad
	}
	qty, unit = strings.TrimSpace(qty), strings.TrimSpace(unit)
	secs, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("cannot parse %q as a rate: unknown unit %q (want s, min or h)", s, unit)
	}
	if strings.HasPrefix(qty, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	q, err := strconv.ParseFloat(qty, 64)
	if err != nil {
		b, berr := parseBytes(qty)
		if berr != nil {
			return 0, bad
		}
		q = float64(b)
	}
	if math.IsNaN(q) || math.IsInf(q, 0) || q < 0 {
		return 0, bad
	}
	return Rate(q / secs), nil
}

// String renders r in the first of /s, /min, /h where the amount is a whole
// number (in MiB or larger units when it is a whole number of them), checking
// that the result parses back to r; otherwise as a decimal per second.
func (r Rate) String() string {
	v := float64(r)
	for _, u := range []struct {
		name string
		secs float64
	}{{"s", 1}, {"min", 60}, {"h", 3600}} {
		q := v * u.secs
		w := math.Round(q)
		if w < 0 || w > 1<<53 || math.Abs(q-w) > 1e-9*math.Max(1, w) {
			continue
		}
		s := formatBytes(int64(w), 1<<20) + "/" + u.name
		if back, err := ParseRate(s); err == nil && back == r {
			return s
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + "/s"
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a rate")
	if err != nil {
		return err
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

// Percent is a fraction written as a percentage ("30%" is 0.30) or as a bare
// fraction in [0, 1] ("0.3").
type Percent float64

// Fraction returns p as a fraction (30% is 0.30).
func (p Percent) Fraction() float64 { return float64(p) }

// ParsePercent parses a Percent; see Percent for the syntax.
func ParsePercent(s string) (Percent, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	bad := fmt.Errorf("cannot parse %q as a percentage (e.g. 30%%)", s)
	num, pct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, bad
	}
	if pct {
		return Percent(v / 100), nil
	}
	// A bare 30 is almost surely meant as 30%, not 3000%: make the user say.
	if v > 1 {
		return 0, fmt.Errorf("cannot parse %q as a percentage: a bare number is a fraction in [0, 1]; write %s%%", s, num)
	}
	return Percent(v), nil
}

// String renders p as the shortest "N%" that parses back to p exactly,
// falling back to a bare fraction.
func (p Percent) String() string {
	v := float64(p)
	ok := func(s string) bool { back, err := ParsePercent(s); return err == nil && back == p }
	for prec := 0; prec <= 15; prec++ {
		if s := strconv.FormatFloat(v*100, 'f', prec, 64) + "%"; ok(s) {
			return s
		}
	}
	// v*100 may be off by an ulp or two from the number the user wrote.
	x := v * 100
	for range 4 {
		if s := strconv.FormatFloat(x, 'g', -1, 64) + "%"; ok(s) {
			return s
		}
		x = math.Nextafter(x, math.Inf(1))
	}
	x = v * 100
	for range 4 {
		x = math.Nextafter(x, math.Inf(-1))
		if s := strconv.FormatFloat(x, 'g', -1, 64) + "%"; ok(s) {
			return s
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a percentage")
	if err != nil {
		return err
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (p Percent) MarshalYAML() (any, error) { return p.String(), nil }

// scalar returns the text of a scalar node, or an error naming what was
// wanted and what was found.
func scalar(n *yaml.Node, want string) (string, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("expected %s, got %s", want, kindName(n))
	}
	if n.ShortTag() == "!!null" {
		return "", errors.New("missing value")
	}
	return n.Value, nil
}

// kindName names a node's kind for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an unknown node"
}
