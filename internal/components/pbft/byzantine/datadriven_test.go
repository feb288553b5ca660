package byzantine

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// TestDataDriven runs the configuration cases in testdata/*.txt (commands:
// testdata/README.md). Run with -rewrite to regenerate the expected
// outputs, then review the diff.
func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				out, err := ddRun(t, td)
				if err != nil {
					return "error: " + err.Error()
				}
				return out
			})
		})
	}
}

func ddRun(t *testing.T, td *datadriven.TestData) (string, error) {
	switch td.Cmd {
	case "names":
		return strings.Join(Names(), " "), nil
	case "validate", "new":
		if len(td.CmdArgs) == 0 || len(td.CmdArgs[0].Vals) > 0 {
			t.Fatalf("%s: %s: want the behaviour's name first", td.Pos, td.Cmd)
		}
		name := td.CmdArgs[0].Key
		params := ddParams(t, td)
		self, n := 0, 4
		td.MaybeScanArgs(t, "self", &self)
		td.MaybeScanArgs(t, "n", &n)
		_, newErr := New(name, params, protocol.ReplicaID(self), n, 1)
		if td.Cmd == "new" {
			return ddResult(newErr), nil
		}
		// Validate's errors are New's (for a replica New accepts).
		err := Validate(name, params)
		if fmt.Sprint(err) != fmt.Sprint(newErr) {
			t.Fatalf("%s: Validate: %v; New: %v", td.Pos, err, newErr)
		}
		return ddResult(err), nil
	}
	t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
	return "", nil
}

// ddParams reads the parameters, "key: value" a line (an absent input:
// nil, the defaults).
func ddParams(t *testing.T, td *datadriven.TestData) map[string]string {
	if strings.TrimSpace(td.Input) == "" {
		return nil
	}
	params := map[string]string{}
	for _, line := range strings.Split(td.Input, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: want key: value, got %q", td.Pos, line)
		}
		v = strings.TrimSpace(v)
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		params[strings.TrimSpace(k)] = v
	}
	return params
}

func ddResult(err error) string {
	if err != nil {
		if strings.Contains(err.Error(), "\n") {
			return "multi-line error: " + err.Error()
		}
		return "error: " + err.Error()
	}
	return "ok"
}
