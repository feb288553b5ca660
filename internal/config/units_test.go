package config

import (
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// unmarshal decodes a YAML scalar into a unit type, as a config field would.
func unmarshal[T any](in string) (T, error) {
	var v struct {
		V T `yaml:"v"`
	}
	err := yaml.Unmarshal([]byte("v: "+in), &v)
	return v.V, err
}

// marshalRoundTrip checks that v encodes to YAML that decodes back to v.
func marshalRoundTrip[T comparable](t *testing.T, v T) {
	t.Helper()
	out, err := yaml.Marshal(struct{ V T }{v})
	if err != nil {
		t.Fatalf("Marshal(%v): %v", v, err)
	}
	var back struct{ V T }
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("Unmarshal(%q): %v", out, err)
	}
	if back.V != v {
		t.Errorf("round trip of %v via %q gave %v", v, strings.TrimSpace(string(out)), back.V)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"72h", 72 * time.Hour, "72h"},
		{"30s", 30 * time.Second, "30s"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"3d", 72 * time.Hour, "72h"},
		{"1d12h", 36 * time.Hour, "36h"},
		{"0", 0, "0s"},
		{"0s", 0, "0s"},
		{"100ms", 100 * time.Millisecond, "100ms"},
		{"1h0m5s", time.Hour + 5*time.Second, "1h0m5s"},
		{"2562047h", 2562047 * time.Hour, "2562047h"},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got.Std() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.Std(), err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("Duration(%v).String() = %q, want %q", tc.want, got.String(), tc.str)
		}
		y, err := unmarshal[Duration](tc.in)
		if err != nil || y != got {
			t.Errorf("yaml %q = %v, %v", tc.in, y, err)
		}
		marshalRoundTrip(t, got)
	}
	for _, tc := range []struct{ in, err string }{
		{"-5m", `must not be negative, got "-5m"`},
		{"-3d", `must not be negative, got "-3d"`},
		{"fast", `cannot parse "fast" as a duration`},
		{"30", `cannot parse "30" as a duration`},
		{"1.5d", `cannot parse "1.5d" as a duration`},
		{"3d-1h", `cannot parse "3d-1h" as a duration`},
		{"d", `cannot parse "d" as a duration`},
		{"999999999d", `cannot parse "999999999d" as a duration`},
		{"106751d23h47m16.854775808s", `as a duration`},
		{"", `cannot parse "" as a duration`},
	} {
		if _, err := ParseDuration(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseDuration(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
	if _, err := unmarshal[Duration]("[1m]"); err == nil || !strings.Contains(err.Error(), "expected a duration, got a list") {
		t.Errorf("list: %v", err)
	}
	for _, d := range []Duration{0, 1, Duration(time.Hour + time.Nanosecond), math.MaxInt64} {
		marshalRoundTrip(t, d)
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
	}{
		{"256MiB", 256 << 20, "256MiB"},
		{"512MiB", 512 << 20, "512MiB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"1024MiB", 1 << 30, "1GiB"},
		{"4096", 4096, "4KiB"},
		{"4097", 4097, "4097"},
		{"10MB", 10_000_000, "10000000"},
		{"1.5KiB", 1536, "1536"},
		{"0", 0, "0"},
		{"1 GiB", 1 << 30, "1GiB"},
	} {
		got, err := ParseByteSize(tc.in)
		if err != nil || got.Bytes() != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got.Bytes(), err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("ByteSize(%d).String() = %q, want %q", tc.want, got.String(), tc.str)
		}
		y, err := unmarshal[ByteSize](tc.in)
		if err != nil || y != got {
			t.Errorf("yaml %q = %v, %v", tc.in, y, err)
		}
		marshalRoundTrip(t, got)
	}
	for _, tc := range []struct{ in, err string }{
		{"-1MiB", "must not be negative"},
		{"lots", `cannot parse "lots" as a byte size`},
		{"256XiB", `cannot parse "256XiB" as a byte size`},
		{"16EiB", `cannot parse "16EiB" as a byte size`},
		{"", `cannot parse "" as a byte size`},
	} {
		if _, err := ParseByteSize(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseByteSize(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
	for _, b := range []ByteSize{1, 1023, 1 << 62, math.MaxInt64} {
		marshalRoundTrip(t, b)
	}
}

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		str  string
	}{
		{"1MiB/min", float64(1<<20) / 60, "1MiB/min"},
		{"2MiB/s", 2 << 20, "2MiB/s"},
		{"10/min", 10.0 / 60, "10/min"},
		{"5/min", 5.0 / 60, "5/min"},
		{"500/s", 500, "500/s"},
		{"60/min", 1, "1/s"},
		{"3/h", 3.0 / 3600, "3/h"},
		{"1/hour", 1.0 / 3600, "1/h"},
		{"0.5/sec", 0.5, "30/min"},
		{"1KiB/s", 1024, "1024/s"},
		{"4MiB/m", float64(4<<20) / 60, "4MiB/min"},
		{"0/s", 0, "0/s"},
		{" 7 / min ", 7.0 / 60, "7/min"},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got.PerSecond() != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got.PerSecond(), err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("Rate(%v).String() = %q, want %q", tc.want, got.String(), tc.str)
		}
		y, err := unmarshal[Rate](tc.in)
		if err != nil || y != got {
			t.Errorf("yaml %q = %v, %v", tc.in, y, err)
		}
		marshalRoundTrip(t, got)
	}
	for _, tc := range []struct{ in, err string }{
		{"10/day", `unknown unit "day"`},
		{"10", `cannot parse "10" as a rate`},
		{"-1/s", "must not be negative"},
		{"fast/s", `cannot parse "fast/s" as a rate`},
		{"inf/s", `cannot parse "inf/s" as a rate`},
		{"NaN/s", `cannot parse "NaN/s" as a rate`},
		{"/s", `cannot parse "/s" as a rate`},
	} {
		if _, err := ParseRate(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseRate(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
	for _, r := range []Rate{1e-300, 1.0 / 3, 123.456, 1e300, math.MaxFloat64, math.SmallestNonzeroFloat64, Rate(7<<20) / 3600} {
		marshalRoundTrip(t, r)
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		str  string
	}{
		{"30%", 0.30, "30%"},
		{"0%", 0, "0%"},
		{"100%", 1, "100%"},
		{"12.5%", 0.125, "12.5%"},
		{"0.3", 0.3, "30%"},
		{"1", 1, "100%"},
		{"0.07", 0.07, "7%"},
		{"150%", 1.5, "150%"},
	} {
		got, err := ParsePercent(tc.in)
		if err != nil || got.Fraction() != tc.want {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v", tc.in, got.Fraction(), err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("Percent(%v).String() = %q, want %q", tc.want, got.String(), tc.str)
		}
		y, err := unmarshal[Percent](tc.in)
		if err != nil || y != got {
			t.Errorf("yaml %q = %v, %v", tc.in, y, err)
		}
		marshalRoundTrip(t, got)
	}
	for _, tc := range []struct{ in, err string }{
		{"30", "a bare number is a fraction in [0, 1]; write 30%"},
		{"-5%", "must not be negative"},
		{"ten%", `cannot parse "ten%" as a percentage`},
		{"%", `cannot parse "%" as a percentage`},
		{"nan%", `cannot parse "nan%" as a percentage`},
	} {
		if _, err := ParsePercent(tc.in); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParsePercent(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
	// The division by 100 is inexact; String still gives back what was written.
	for _, in := range []string{"33.333%", "0.1%", "99.99%", "2.675%"} {
		if p, err := ParsePercent(in); err != nil || p.String() != in {
			t.Errorf("ParsePercent(%q).String() = %q, %v", in, p.String(), err)
		}
	}
	for _, p := range []Percent{1.0 / 3, 0.1 + 0.2, 1e-300, 0.999999999999, 1e300, math.SmallestNonzeroFloat64} {
		marshalRoundTrip(t, p)
	}
}
