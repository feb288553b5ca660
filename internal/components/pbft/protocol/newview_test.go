package protocol

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestNewViewPlan runs testdata/newview: each "plan n=N" lists one
// view-change message a line,
//
//	<from> stable=<seq>[/<digest>] [p=<seq>/<view>/<digest>]... [q=<seq>/<view>/<digest>]...
//
// (p: prepared, one per seq; q: pre-prepared, several per seq allowed;
// digests are names) and prints the checkpoint and the batch per seq, or
// "wait" when the messages decide nothing yet.
func TestNewViewPlan(t *testing.T) {
	names := map[Digest]string{nullDigest: "null", {}: "-"}
	digest := func(name string) Digest {
		if name == "-" {
			return Digest{}
		}
		d := sha256.Sum256([]byte(name))
		names[d] = name
		return d
	}
	datadriven.RunTest(t, "testdata/newview", func(t *testing.T, td *datadriven.TestData) string {
		if td.Cmd != "plan" {
			t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
		}
		var n int
		td.ScanArgs(t, "n", &n)
		var vcs []Message
		for line := range strings.Lines(td.Input) {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			from, err := strconv.Atoi(fs[0])
			if err != nil {
				t.Fatalf("%s: %q: %v", td.Pos, line, err)
			}
			vc := &ViewChange{}
			bySeq := map[Seq]*Prepared{}
			var order []Seq
			get := func(s Seq) *Prepared {
				if bySeq[s] == nil {
					bySeq[s] = &Prepared{Seq: s}
					order = append(order, s)
				}
				return bySeq[s]
			}
			for _, f := range fs[1:] {
				k, v, _ := strings.Cut(f, "=")
				parts := strings.Split(v, "/")
				num := func(i int) uint64 {
					x, err := strconv.ParseUint(parts[i], 10, 64)
					if err != nil {
						t.Fatalf("%s: %q: %v", td.Pos, f, err)
					}
					return x
				}
				switch {
				case k == "stable":
					vc.Stable = Seq(num(0))
					if len(parts) > 1 {
						vc.StableDigest = digest(parts[1])
					}
				case (k == "p" || k == "q") && len(parts) == 3:
					s, v, d := Seq(num(0)), View(num(1)), digest(parts[2])
					if k == "p" {
						get(s).PView, get(s).PDigest = v, d
					} else {
						get(s).Q = append(get(s).Q, PrePrepared{View: v, Digest: d})
					}
				default:
					t.Fatalf("%s: bad field %q", td.Pos, f)
				}
			}
			for _, s := range order {
				vc.Prepared = append(vc.Prepared, *bySeq[s])
			}
			vcs = append(vcs, Message{Kind: KindViewChange, From: ReplicaID(from), View: 9, ViewChange: vc})
		}
		plan, ok := NewViewPlan(n, (n-1)/3, vcs)
		if !ok {
			return "wait\n"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "checkpoint %d %s\n", plan.Checkpoint, names[plan.CheckpointDigest])
		for _, pb := range plan.Batches {
			null := ""
			if pb.Null {
				null = " (gap)"
			}
			fmt.Fprintf(&b, "%d %s%s\n", pb.Seq, names[pb.Digest], null)
		}
		return b.String()
	})
}
