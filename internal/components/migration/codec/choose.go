package codec

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Profile is a codec's measured cost and effect on some guest memory.
type Profile struct {
	Name string
	// Speed is Compress's throughput on one core, in input bytes per
	// second; +Inf for none, which costs no CPU (the migration sends its
	// batches without calling Compress).
	Speed float64
	// Ratio is output bytes over input bytes, envelope included: below 1
	// when the memory compresses, about 1.00001 for random pages (stored
	// with a 6- to 10-byte envelope); exactly 1 for none.
	Ratio float64
}

// Choice is the codec Choose picks for a migration.
type Choice struct {
	Name string
	// PredictedBytesPerSec is how much guest memory (input bytes) a second
	// moves with this codec; 0 when the link's bandwidth is unknown.
	PredictedBytesPerSec float64
	// Reason says why, in one line, for logs and reports.
	Reason string
}

const (
	// measureBatch is what Measure compresses at a time: a full page batch
	// of the migration (256 pages of 4 KiB), the unit the engine hands to
	// Compress. Per-page calls would measure a different thing: the
	// per-call cost dominates and no codec sees across pages.
	measureBatch = 256 * 4096
	// measureMinTime is how long Measure compresses with each codec, at
	// least: a timer's granularity and one GC or preemption are then small
	// against it.
	measureMinTime = 20 * time.Millisecond
	// measureMaxBytes bounds the bytes a codec compresses in Measure
	// however fast the clock says it goes (the last pass is always
	// finished, so a sample larger than this is compressed once).
	measureMaxBytes = 256 << 20
	// tieMargin: predictions within 5% of the best are a tie, which goes
	// to the codec cheaper on CPU.
	tieMargin = 1.05
)

// Measure compresses sample with each named codec, in batches of 256
// pages (1 MiB) as the migration does, and returns their profiles in the
// order of names. Each codec compresses the sample over and over, after
// a warm-up, for at least 20 ms (or one pass, if that takes longer) and at
// most 256 MiB; Speed is the wall time of those Compress calls on the
// calling goroutine (one core): a noisy figure, which falls on a loaded
// host and under -race. Ratio is exact: the codecs are deterministic.
// none is not run: Speed +Inf, Ratio 1.
//
// The sample should be memory as the engine sends it: zero pages go as
// markers and never reach the codec, so leave them out, or every codec's
// Ratio flatters it. Measure starts no goroutine and takes about 20 ms a
// codec: keep the sample to a few MiB.
func Measure(sample []byte, names []string) ([]Profile, error) {
	if len(sample) == 0 {
		return nil, errors.New("codec: measure: empty sample")
	}
	if len(names) == 0 {
		return nil, errors.New("codec: measure: no codec to measure")
	}
	cs := make([]Codec, len(names))
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return nil, fmt.Errorf("codec: measure: %q named twice", n)
		}
		c, err := ByName(n)
		if err != nil {
			return nil, err
		}
		cs[i] = c
	}
	var batches [][]byte
	for rest := sample; len(rest) > 0; {
		n := min(len(rest), measureBatch)
		batches, rest = append(batches, rest[:n]), rest[n:]
	}
	var dst []byte
	profiles := make([]Profile, len(cs))
	for i, c := range cs {
		if c.Name() == "none" {
			profiles[i] = Profile{Name: "none", Speed: math.Inf(1), Ratio: 1}
			continue
		}
		// Warm up, into a dst with room for any frame of a batch, so the
		// timed calls do not allocate: zstd's shared Encoder hands out its
		// up to 8 block coders in turn, each making its 1 MiB history on
		// first use, which one page a coder is enough to trigger.
		if dst == nil {
			dst = make([]byte, 0, 2*measureBatch)
		}
		var err error
		for k := range 9 {
			warm := batches[0]
			if k < 8 {
				warm = warm[:min(len(warm), 4096)]
			}
			if dst, err = c.Compress(dst[:0], warm); err != nil {
				return nil, fmt.Errorf("codec: measure %s: %w", c.Name(), err)
			}
		}
		var in, out int64 // of the first timed pass
		var done int64    // input bytes compressed in the timed passes
		start := time.Now()
		var took time.Duration
		for pass := 0; ; pass++ {
			for _, b := range batches {
				if dst, err = c.Compress(dst[:0], b); err != nil {
					return nil, fmt.Errorf("codec: measure %s: %w", c.Name(), err)
				}
				if pass == 0 {
					in, out = in+int64(len(b)), out+int64(len(dst))
				}
			}
			done += int64(len(sample))
			if took = time.Since(start); took >= measureMinTime || done >= measureMaxBytes {
				break
			}
		}
		profiles[i] = Profile{
			Name:  c.Name(),
			Speed: float64(done) / max(took, time.Nanosecond).Seconds(),
			Ratio: float64(out) / float64(in),
		}
	}
	return profiles, nil
}

// Choose picks the codec that moves guest memory fastest over a link of
// linkBytesPerSec with workers streams compressing in parallel (at most
// one per core the migration may use): compressing and sending overlap,
// so a profile moves one input byte in max(1/(Speed*workers),
// Ratio/linkBytesPerSec) seconds, the slower of the CPUs and the link.
// Predictions within 5% of the best are a tie, which goes to the codec
// cheaper on CPU: none first, then the higher Speed, then the lower Ratio.
//
// A link of 0 or less is one not measured yet: the choice is then none
// (PredictedBytesPerSec 0, Reason "no bandwidth estimate yet"), whether or
// not profiles lists it. Profiles must name distinct codecs ByName knows,
// with Speed above 0 (+Inf allowed) and a finite Ratio above 0; workers
// must be at least 1.
//
// Speed*workers assumes the codec scales with streams: zstd compresses at
// most min(GOMAXPROCS, 8) batches at once (see doc.go), so pass workers no
// higher than that when zstd is among the profiles.
func Choose(linkBytesPerSec float64, profiles []Profile, workers int) (Choice, error) {
	if err := validate(linkBytesPerSec, profiles, workers); err != nil {
		return Choice{}, err
	}
	if linkBytesPerSec <= 0 {
		return Choice{Name: "none", Reason: "no bandwidth estimate yet"}, nil
	}
	rates := make([]float64, len(profiles))
	best := 0
	for i, p := range profiles {
		rates[i] = predict(linkBytesPerSec, p, workers)
		if rates[i] > rates[best] {
			best = i
		}
	}
	pick := best
	for i, p := range profiles {
		if rates[i]*tieMargin >= rates[best] && cheaper(p, profiles[pick]) {
			pick = i
		}
	}
	p, rate := profiles[pick], rates[pick]
	var why strings.Builder
	fmt.Fprintf(&why, "%s moves %s of guest memory (%s)", p.Name, fmtRate(rate), bound(linkBytesPerSec, p, workers))
	switch {
	case pick != best:
		b := profiles[best]
		why2 := "cheaper on CPU"
		if p.Name != "none" && p.Speed == b.Speed {
			why2 = "as fast, smaller output"
		}
		fmt.Fprintf(&why, " vs %s with %s (%s), within 5%%: %s",
			fmtRate(rates[best]), b.Name, bound(linkBytesPerSec, b, workers), why2)
	case p.Name == "none":
		next := -1
		for i := range profiles {
			if i != pick && (next < 0 || rates[i] > rates[next]) {
				next = i
			}
		}
		if next >= 0 {
			n := profiles[next]
			fmt.Fprintf(&why, " vs %s with %s (%s)", fmtRate(rates[next]), n.Name, bound(linkBytesPerSec, n, workers))
		}
	default:
		raw := linkBytesPerSec // none's rate, unless the caller gave none a finite Speed
		if i := slices.IndexFunc(profiles, func(p Profile) bool { return p.Name == "none" }); i >= 0 {
			raw = rates[i]
		}
		fmt.Fprintf(&why, " vs %s uncompressed", fmtRate(raw))
	}
	return Choice{Name: p.Name, PredictedBytesPerSec: rate, Reason: why.String()}, nil
}

func validate(link float64, profiles []Profile, workers int) error {
	if math.IsNaN(link) || math.IsInf(link, 0) {
		return fmt.Errorf("codec: choose: link bandwidth %v bytes/s is not a number", link)
	}
	if workers < 1 {
		return fmt.Errorf("codec: choose: %d workers (need at least 1)", workers)
	}
	if len(profiles) == 0 {
		return errors.New("codec: choose: no codec profiles to choose from")
	}
	for i, p := range profiles {
		if _, err := ByName(p.Name); err != nil {
			return fmt.Errorf("codec: choose: profile %d: %w", i, err)
		}
		if slices.ContainsFunc(profiles[:i], func(q Profile) bool { return q.Name == p.Name }) {
			return fmt.Errorf("codec: choose: two profiles for %s", p.Name)
		}
		if !(p.Speed > 0) { // NaN too
			return fmt.Errorf("codec: choose: %s: speed %v bytes/s (need > 0)", p.Name, p.Speed)
		}
		if !(p.Ratio > 0) || math.IsInf(p.Ratio, 0) {
			return fmt.Errorf("codec: choose: %s: ratio %v (need a finite ratio > 0)", p.Name, p.Ratio)
		}
	}
	return nil
}

// predict is the guest memory (input bytes) a second moves with p.
func predict(link float64, p Profile, workers int) float64 {
	return 1 / max(1/(p.Speed*float64(workers)), p.Ratio/link)
}

// cheaper: a costs less CPU than b. none costs none; then the faster
// codec, then the better ratio; on a full tie, b (the earlier) stays.
func cheaper(a, b Profile) bool {
	if (a.Name == "none") != (b.Name == "none") {
		return a.Name == "none"
	}
	if a.Speed != b.Speed {
		return a.Speed > b.Speed
	}
	return a.Ratio < b.Ratio
}

// bound says what limits p: the link or the CPUs.
func bound(link float64, p Profile, workers int) string {
	if p.Ratio/link >= 1/(p.Speed*float64(workers)) {
		if p.Name == "none" {
			return "link-bound: " + fmtRate(link)
		}
		return fmt.Sprintf("link-bound: %s / ratio %.3g", fmtRate(link), p.Ratio)
	}
	w := "workers"
	if workers == 1 {
		w = "worker"
	}
	return fmt.Sprintf("CPU-bound: %d %s x %s", workers, w, fmtRate(p.Speed))
}

// fmtRate prints bytes/s in decimal units, as links are sold, to 3
// significant digits (a rate just under a unit's boundary, as 1/(1/1e9)
// can be, rounds up into it).
func fmtRate(r float64) string {
	switch {
	case r >= 999.5e9:
		return fmt.Sprintf("%.0f GB/s", r/1e9)
	case r >= 999.5e6:
		return fmt.Sprintf("%.3g GB/s", r/1e9)
	case r >= 99.95e6:
		return fmt.Sprintf("%.0f MB/s", r/1e6)
	default:
		return fmt.Sprintf("%.3g MB/s", r/1e6)
	}
}
