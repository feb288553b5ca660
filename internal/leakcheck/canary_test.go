package leakcheck

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestCanaryBook runs the canary scenarios in testdata/canary/*.txt.
// Times are offsets from the run's start (at=10m). Commands:
//
//	settle d=30m                          the book's settle time
//	start id=c1 resource=heap at=10m [shape=plateau] [rate=2MiB/min]
//	end id=c1 at=40m
//	alert signal=heap_live_bytes at=25m   whose alert is it? (and detection)
//	missed at=1h warm=10m                 canaries newly missed
//	book                                  every canary
func TestCanaryBook(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "canary", "*.txt"))
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			b := &canaryBook{settle: 30 * time.Minute}
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			at := func(td *datadriven.TestData, key string) time.Time {
				var s string
				td.ScanArgs(t, key, &s)
				d, err := time.ParseDuration(s)
				if err != nil {
					t.Fatalf("%s: %s=%q: %v", td.Pos, key, s, err)
				}
				return t0.Add(d)
			}
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				arg := func(key, def string) string {
					if td.HasArg(key) {
						var s string
						td.ScanArgs(t, key, &s)
						return s
					}
					return def
				}
				switch td.Cmd {
				case "settle":
					var s string
					td.ScanArgs(t, "d", &s)
					d, err := time.ParseDuration(s)
					if err != nil {
						t.Fatal(err)
					}
					b.settle = d
					return ""
				case "start":
					c := b.start(Canary{ID: arg("id", ""), Resource: arg("resource", "heap"), Rate: arg("rate", "2MiB/min"),
						Shape: arg("shape", "linear"), Started: at(td, "at")})
					return fmt.Sprintf("%s in force since %s\n", c.ID, c.Started.Sub(t0))
				case "end":
					b.end(arg("id", ""), at(td, "at"))
					return ""
				case "alert":
					sig, now := arg("signal", ""), at(td, "at")
					c := b.covering(sig, now)
					if c == nil {
						return "a real alert\n"
					}
					if b.alerted(c, sig, now) {
						return fmt.Sprintf("canary %s's, its detection after %s\n", c.ID, c.DetectionTime())
					}
					return fmt.Sprintf("canary %s's\n", c.ID)
				case "missed":
					var warm time.Time
					if td.HasArg("warm") {
						warm = at(td, "warm")
					}
					var ids []string
					for _, c := range b.missed(at(td, "at"), warm) {
						ids = append(ids, c.ID)
					}
					if len(ids) == 0 {
						return "none\n"
					}
					return strings.Join(ids, " ") + "\n"
				case "book":
					var out strings.Builder
					for _, c := range b.snapshot() {
						fmt.Fprintf(&out, "%s %s %s from %s", c.ID, c.Resource, c.Shape, c.Started.Sub(t0))
						if !c.Ended.IsZero() {
							fmt.Fprintf(&out, " to %s", c.Ended.Sub(t0))
						}
						if !c.DetectedAt.IsZero() {
							fmt.Fprintf(&out, ", detected after %s", c.DetectionTime())
						}
						if c.Missed {
							out.WriteString(", missed")
						}
						out.WriteString("\n")
					}
					return out.String()
				}
				t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
				return ""
			})
		})
	}
}

// The book is bounded: a run with more canaries than maxCanaries forgets
// the oldest settled ones and keeps the ones still in force.
func TestCanaryBookBounded(t *testing.T) {
	b := &canaryBook{settle: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keep := b.start(Canary{ID: "long", Resource: "heap", Started: t0})
	for i := range 10 * maxCanaries {
		at := t0.Add(time.Duration(i+1) * time.Hour)
		c := b.start(Canary{ID: fmt.Sprint("c", i), Resource: "fds", Started: at})
		b.alerted(c, SignalFDs, at.Add(time.Minute))
		b.end(c.ID, at.Add(2*time.Minute))
	}
	if n := len(b.list); n > maxCanaries {
		t.Fatalf("%d canaries kept, bound %d", n, maxCanaries)
	}
	if b.list[0] != keep {
		t.Fatalf("the canary still in force was forgotten: first is %s", b.list[0].ID)
	}
}
