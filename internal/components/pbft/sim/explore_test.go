package sim

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

func TestExplore(t *testing.T) {
	if os.Getenv("SIM_EXPLORE") == "" {
		t.Skip()
	}
	drop, _ := strconv.ParseFloat(os.Getenv("SIM_DROP"), 64)
	delay, _ := strconv.Atoi(os.Getenv("SIM_DELAY"))
	vct, _ := strconv.Atoi(os.Getenv("SIM_VCT"))
	bad := 0
	for _, byz := range []string{"", "equivocate", "mutate", "forge", "replay", "silent", "lie-view-change"} {
		for _, who := range []protocol.ReplicaID{0, 1, 2} {
			for seed := uint64(1); seed <= 10; seed++ {
				o := Options{N: 4, Seed: seed, Requests: 20, DropRate: drop, MaxDelay: delay}
				if vct > 0 {
					o.Config = func(c *protocol.Config) { c.ViewChangeTimeout = vct }
				}
				if byz != "" {
					o.Byzantine = map[protocol.ReplicaID]string{who: byz}
				}
				start := time.Now()
				r, err := Run(o)
				if err != nil {
					t.Fatal(err)
				}
				if !r.Done || r.Failed() != "" || seed == 1 {
					if !r.Done || r.Failed() != "" {
						bad++
					}
					t.Logf("%s@%d seed %d (%v): %s\n%s", byz, who, seed, time.Since(start), r.Summary(), r.Failed())
				}
			}
		}
	}
	t.Logf("bad %d", bad)
}
