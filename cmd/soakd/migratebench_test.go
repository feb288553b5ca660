package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateBench: the command migrates a generated guest and a raw image
// and prints one JSON line each; bad flags are usage errors.
func TestMigrateBench(t *testing.T) {
	image := filepath.Join(t.TempDir(), "guest.raw")
	data := make([]byte, 4<<20+100) // not a whole number of pages: rounded down
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(image, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"migrate-bench", "--size", "8MiB", "--dirty-rate", "16MiB/s", "--compression", "s2", "--loopback"},
		{"migrate-bench", "--image", image, "--streams", "2"},
	} {
		out, errOut, code := soakd(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 {
			t.Fatalf("%v: %d lines of output", args, len(lines))
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		if r["outcome"] != "ok" || r["total_ms"].(float64) <= 0 || r["wire_bytes"].(float64) <= 0 {
			t.Fatalf("%v: %s", args, out)
		}
		t.Logf("%s", strings.TrimSpace(out))
	}
	if _, _, code := soakd(t, "migrate-bench", "--image", image+".missing"); code != exitFailure {
		t.Fatalf("missing image: exit %d", code)
	}
	if _, errOut, code := soakd(t, "migrate-bench", "--hot-set", "0%"); code != exitUsage || !strings.Contains(errOut, "--hot-set") {
		t.Fatalf("bad --hot-set: exit %d: %s", code, errOut)
	}
}
