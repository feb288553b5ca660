package status

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/run"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type sick struct{ components.Component }

func (sick) Name() string              { return "kv" }
func (sick) Health() components.Health { return components.Health{Detail: "no quorum"} }

// TestDocumentShape: the status API's field names are a contract, lists are
// [] rather than null before the parts exist, and attached parts show up.
func TestDocumentShape(t *testing.T) {
	clock := clockwork.NewFakeClock()
	r, err := run.Open(run.Options{StateDir: t.TempDir(), Seed: 7, Target: time.Hour, CheckpointInterval: time.Second,
		ShutdownTimeout: time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = r.Serve(ctx, nil)
	}()
	a := New(r)
	b, err := json.Marshal(a.Status())
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, key := range []string{`"run_id":"`, `"seed":7`, `"phase":`, `"started_at":`, `"elapsed_seconds":`,
		`"target_seconds":3600`, `"progress":0`, `"incarnation":1`, `"state_dir":`, `"components":[]`,
		`"active_faults":[]`, `"firing_alerts":[]`, `"fault_residue":[]`} {
		if !strings.Contains(doc, key) {
			t.Errorf("status lacks %s: %s", key, doc)
		}
	}
	a.Attach(Parts{Components: []components.Component{sick{}}})
	st := a.Status()
	if len(st.Components) != 1 || st.Components[0].Name != "kv" || st.Components[0].Detail != "no quorum" || st.Components[0].Summary != nil {
		t.Fatalf("components = %+v", st.Components)
	}
}
