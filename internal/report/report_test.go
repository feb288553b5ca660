package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/report"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the golden reports in testdata")

// recorded is a real 5-minute run of soakd (testdata/run1: its state dir
// without the components' data and profiles), with a heap leak canary, a
// Raft leader partition and a Raft follower crash on the timeline.
const recorded = "testdata/run1"

// The Markdown and JSON reports of the recorded run are golden: a change
// in what the report computes or says shows up here as a diff (go test
// -update rewrites them after a deliberate change).
func TestGoldenReports(t *testing.T) {
	in, err := report.ReadStateDir(recorded)
	if err != nil {
		t.Fatal(err)
	}
	r := report.Build(in)
	for _, c := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"report.md", func(b *bytes.Buffer) error { return report.WriteMarkdown(b, r) }},
		{"report.json", func(b *bytes.Buffer) error { return report.WriteJSON(b, r) }},
	} {
		var b bytes.Buffer
		if err := c.write(&b); err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "run1."+c.name)
		if *update {
			if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			got := filepath.Join(t.TempDir(), c.name)
			_ = os.WriteFile(got, b.Bytes(), 0o644)
			t.Errorf("%s differs from %s (got written to %s; diff them, or go test -update after a deliberate change)", c.name, golden, got)
		}
	}
}
