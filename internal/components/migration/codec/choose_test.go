package codec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestChoose runs the scenarios of testdata/choose. Run with -rewrite to
// regenerate the expected outputs, then review the diff.
//
//	profiles              the input ("name speed ratio" a line) becomes the
//	                      profiles of the next chooses
//	choose link=R [workers=N]
//	                      Choose over the input's profiles, or the last
//	                      ones: each profile's prediction, then the choice
//
// Rates are a number with an optional unit, decimal as links are sold:
// B/s, kB/s, MB/s, GB/s; inf and NaN parse too.
func TestChoose(t *testing.T) {
	var profiles []Profile
	datadriven.RunTest(t, "testdata/choose", func(t *testing.T, td *datadriven.TestData) string {
		switch td.Cmd {
		case "profiles":
			ps, err := parseProfiles(td.Input)
			if err != nil {
				t.Fatalf("%s: %v", td.Pos, err)
			}
			profiles = ps
			return ""
		case "choose":
			ps := profiles
			if td.Input != "" {
				var err error
				if ps, err = parseProfiles(td.Input); err != nil {
					t.Fatalf("%s: %v", td.Pos, err)
				}
			}
			var linkArg string
			td.ScanArgs(t, "link", &linkArg)
			link, err := parseRate(linkArg)
			if err != nil {
				t.Fatalf("%s: %v", td.Pos, err)
			}
			workers := 1
			td.MaybeScanArgs(t, "workers", &workers)
			c, err := Choose(link, ps, workers)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			var b strings.Builder
			if link > 0 {
				for _, p := range ps {
					fmt.Fprintf(&b, "%-5s %10s  %s\n", p.Name, fmtRate(predict(link, p, workers)), bound(link, p, workers))
				}
			}
			fmt.Fprintf(&b, "=> %s %s\n%s\n", c.Name, fmtRate(c.PredictedBytesPerSec), c.Reason)
			return b.String()
		default:
			t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
			return ""
		}
	})
}

func parseProfiles(in string) ([]Profile, error) {
	var ps []Profile
	for line := range strings.Lines(in) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("profile %q: want name speed ratio", strings.TrimSpace(line))
		}
		speed, err := parseRate(f[1])
		if err != nil {
			return nil, err
		}
		ratio, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, err
		}
		ps = append(ps, Profile{Name: f[0], Speed: speed, Ratio: ratio})
	}
	return ps, nil
}

func parseRate(s string) (float64, error) {
	num, mult := s, 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"GB/s", 1e9}, {"MB/s", 1e6}, {"kB/s", 1e3}, {"B/s", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q: %v", s, err)
	}
	return v * mult, nil
}

// pages is n pages of one kind: zero, text or random.
func pages(r *rand.Rand, kind string, n int) []byte {
	var b []byte
	for range n {
		switch kind {
		case "zero":
			b = append(b, make([]byte, pageSize)...)
		case "text":
			b = append(b, textPage(r)...)
		default:
			b = append(b, randomPage(r)...)
		}
	}
	return b
}

// TestMeasure checks what cannot vary from run to run: the ratios (the
// codecs are deterministic) and that every speed is a positive number.
func TestMeasure(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 1))
	mixed := testBatch(600, 7) // 60% zero, 30% text, 10% random pages; not a whole number of batches
	sent := append(pages(r, "text", 450), pages(r, "random", 150)...)
	r.Shuffle(len(sent)/pageSize, func(i, j int) { // interleave whole pages
		a, b := sent[i*pageSize:(i+1)*pageSize], sent[j*pageSize:(j+1)*pageSize]
		var tmp [pageSize]byte
		copy(tmp[:], a)
		copy(a, b)
		copy(b, tmp[:])
	})
	random := append(pages(r, "random", 300), 1, 2, 3) // and a short last page
	names := Names()

	measure := func(name string, sample []byte) map[string]Profile {
		t.Helper()
		ps, err := Measure(sample, names)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ps) != len(names) {
			t.Fatalf("%s: %d profiles for %d names", name, len(ps), len(names))
		}
		byName := map[string]Profile{}
		for i, p := range ps {
			if p.Name != names[i] {
				t.Fatalf("%s: profile %d is %q, want %q", name, i, p.Name, names[i])
			}
			t.Logf("%-14s %-4s speed %9.1f MB/s  ratio %.4f", name, p.Name, p.Speed/1e6, p.Ratio)
			if p.Name == "none" {
				if !math.IsInf(p.Speed, 1) || p.Ratio != 1 {
					t.Errorf("%s: none: %+v, want speed +Inf and ratio 1", name, p)
				}
			} else if !(p.Speed > 0) || math.IsInf(p.Speed, 0) {
				t.Errorf("%s: %s: speed %v, want a positive number", name, p.Name, p.Speed)
			}
			byName[p.Name] = p
		}
		return byName
	}

	m := measure("mixed", mixed)
	if z := m["zstd"].Ratio; z >= 0.5 {
		t.Errorf("mixed: zstd ratio %.3f, want < 0.5", z)
	}
	for _, n := range []string{"s2", "lz4", "zstd"} {
		if m[n].Ratio >= 0.5 {
			t.Errorf("mixed: %s ratio %.3f, want < 0.5 (60%% zero pages)", n, m[n].Ratio)
		}
	}

	s := measure("text+random", sent)
	for _, n := range []string{"s2", "lz4"} {
		if s["zstd"].Ratio > s[n].Ratio {
			t.Errorf("text+random: zstd ratio %.3f above %s's %.3f", s["zstd"].Ratio, n, s[n].Ratio)
		}
		if s[n].Ratio <= m[n].Ratio {
			t.Errorf("%s: ratio %.3f without zero pages, %.3f with them: want it worse without", n, s[n].Ratio, m[n].Ratio)
		}
	}
	for _, p := range s {
		if p.Ratio >= 1 && p.Name != "none" {
			t.Errorf("text+random: %s ratio %.3f, want < 1", p.Name, p.Ratio)
		}
	}

	for _, p := range measure("random", random) {
		if p.Ratio < 0.95 || p.Ratio > 1.001 { // stored, plus the envelope
			t.Errorf("random: %s ratio %.5f, want about 1", p.Name, p.Ratio)
		}
	}

	// What Measure returns feeds Choose.
	for _, link := range []float64{0, 12.5e6, 1.25e9, 10e9} {
		c, err := Choose(link, []Profile{m["none"], m["s2"], m["lz4"], m["zstd"]}, 2)
		if err != nil {
			t.Fatalf("choose at %v: %v", link, err)
		}
		if _, err := ByName(c.Name); err != nil || c.Reason == "" {
			t.Errorf("choose at %v: %+v: %v", link, c, err)
		}
		t.Logf("link %-10s => %-4s %s", fmtRate(link), c.Name, c.Reason)
	}
}

func TestMeasureErrors(t *testing.T) {
	page := make([]byte, pageSize)
	for _, tc := range []struct {
		sample []byte
		names  []string
		want   string
	}{
		{nil, []string{"s2"}, "empty sample"},
		{page, nil, "no codec"},
		{page, []string{"s2", "gzip"}, `unknown compression "gzip"`},
		{page, []string{"s2", "zstd", "s2"}, `"s2" named twice`},
	} {
		ps, err := Measure(tc.sample, tc.names)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Measure(%d bytes, %q) = %v, %v; want an error with %q", len(tc.sample), tc.names, ps, err, tc.want)
		}
	}
}

func BenchmarkMeasure(b *testing.B) {
	sample := testBatch(256, 2026)
	for b.Loop() {
		if _, err := Measure(sample, Names()); err != nil {
			b.Fatal(err)
		}
	}
}
