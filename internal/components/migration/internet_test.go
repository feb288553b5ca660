package migration

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
)

// internetFabric shapes the migration links as internet mode does
// (components.Spec.Links, applied by the daemon through fabric.Within).
func internetFabric(tb testing.TB, cfg *config.Config) *fabric.Fabric {
	tb.Helper()
	prof, ok := Spec().Links(cfg)
	if !ok {
		tb.Fatal("internet mode has no link profile")
	}
	f := fabric.New(slog.New(slog.DiscardHandler))
	tb.Cleanup(func() { _ = f.Close() })
	if _, err := f.Bandwidth(fabric.Within("migration"), prof.Bandwidth); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Delay(fabric.Within("migration"), prof.Delay, 0); err != nil {
		tb.Fatal(err)
	}
	return f
}

func internetConfig(mod func(m *config.MigrationComponent)) *config.Config {
	return testConfig(func(m *config.MigrationComponent) {
		m.Mode, m.Compression = "internet", "none"
		m.Internet = config.InternetLink{Bandwidth: config.Rate(4e6), RTT: config.Duration(20 * time.Millisecond)}
		m.Content = config.ContentMix{Zero: 0.6, Text: 0.3, Random: 0.1}
		if mod != nil {
			mod(m)
		}
	})
}

// In internet mode over a slow link, compression none becomes a per-
// migration choice, and the choice compresses: the link, not the codec, is
// the bottleneck. Which codec wins depends on the speeds measured at start
// (zstd on an idle machine; s2 when a busy one slows zstd's measurement),
// so the test asks for a compressing one. The migration still verifies
// byte for byte.
func TestInternetModeChoosesCompressionForSlowLinks(t *testing.T) {
	cfg := internetConfig(nil)
	tc := startCluster(t, cfg, internetFabric(t, cfg).DialerFor("migration"))
	for i := range 2 {
		if res := tc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
			t.Fatalf("migration %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	tc.evMu.Lock()
	defer tc.evMu.Unlock()
	var codecs []string
	for i, typ := range tc.types {
		if typ == EventMigration {
			codecs = append(codecs, fmt.Sprint(tc.events[i]["codec"]))
			t.Logf("%v: %v; guest %.1f MB/s, link estimate %.1f MB/s", tc.events[i]["codec"], tc.events[i]["codec_reason"],
				tc.events[i]["guest_bytes_per_second"].(float64)/1e6, tc.events[i]["link_estimate_bytes_per_second"].(float64)/1e6)
		}
	}
	if len(codecs) != 2 || codecs[0] == "none" || codecs[1] == "none" {
		t.Fatalf("codecs chosen over a 4 MB/s link: %v, want a compressing one for each", codecs)
	}
}

func TestDatacenterModeKeepsTheConfiguredCodec(t *testing.T) {
	tc := startCluster(t, testConfig(func(m *config.MigrationComponent) { m.Compression = "lz4" }), nil)
	if res := tc.migrate(t, "k0"); res.Outcome != components.OutcomeOK {
		t.Fatalf("migration: %v %v", res.Outcome, res.Err)
	}
	if tc.profiles != nil {
		t.Fatal("codecs measured with a configured codec")
	}
	tc.evMu.Lock()
	defer tc.evMu.Unlock()
	for i, typ := range tc.types {
		if typ == EventMigration && tc.events[i]["codec"] != "lz4" {
			t.Fatalf("codec %v, want the configured lz4", tc.events[i]["codec"])
		}
	}
}
