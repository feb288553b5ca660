package resource

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/faults"
)

// TestMain runs Stress when this test binary is started as a resource
// child (startChild re-executes os.Executable()).
func TestMain(m *testing.M) {
	if IsChild() && len(os.Args) > 1 && os.Args[1] == StressCommand {
		if err := Stress(os.Args[2:], os.Stdout, os.Stderr, StopOnSignal()); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestCPUParams(t *testing.T) {
	for _, bad := range []map[string]string{
		{"cores": "0"}, {"cores": "999"}, {"cores": "two"}, {"load": "0%"}, {"load": "150%"}, {"speed": "1"},
	} {
		if err := CPU().Validate(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := CPU().Validate(map[string]string{"cores": "1", "load": "50%"}); err != nil {
		t.Fatal(err)
	}
	if _, err := (&cpuInjector{}).Inject(context.Background(), "raft/node-1", nil); err == nil {
		t.Fatal("a component target accepted")
	}
}

// The burner runs as a child, burns what it was asked (measured by its
// CPU time), and is gone after the revert.
func TestCPUBurnsAndReverts(t *testing.T) {
	in, err := CPU().New(faults.Env{})
	if err != nil {
		t.Fatal(err)
	}
	revert, err := in.Inject(context.Background(), "self", map[string]string{"cores": "1", "load": "50%"})
	if err != nil {
		t.Fatal(err)
	}
	pid := in.(*cpuInjector).pid
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

func TestStressRefusesBadArgs(t *testing.T) {
	for _, args := range [][]string{nil, {"disk"}, {"cpu", "--cores", "0"}, {"cpu", "--load", "0"},
		{"cpu", "--cores", "99999"}} {
		var sb strings.Builder
		if err := Stress(args, &sb, &sb, nil); err == nil {
			t.Errorf("stress %v accepted", args)
		}
	}
}

// On a machine its own burners saturate, a further burner still verifies:
// over a longer span it gets its share.
func TestCPUVerifiesOnASaturatedMachine(t *testing.T) {
	in, _ := CPU().New(faults.Env{})
	var reverts []faults.Revert
	defer func() {
		for _, r := range reverts {
			_ = r(context.Background())
		}
	}()
	for range runtime.NumCPU() + 1 {
		r, err := in.Inject(context.Background(), "self", map[string]string{"cores": "1", "load": "100%"})
		if err != nil {
			t.Fatalf("burner %d on a saturated machine: %v", len(reverts)+1, err)
		}
		reverts = append(reverts, r)
	}
}
