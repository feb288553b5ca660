package migration

import (
	"context"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

// BenchmarkInternetMode migrates a 64 MiB guest of the default content mix
// (60% zero, 30% text, 10% random pages, 2 MiB/s dirtied) over the
// default internet link (25 MB/s, 40 ms round trip), with the codec chosen
// per migration (auto) and with none. It reports the guest memory moved
// per second next to the link cap: zero pages and compression should make
// it at least 4x the cap with auto.
func BenchmarkInternetMode(b *testing.B) {
	for _, compression := range []string{"auto", "none-forced"} {
		b.Run("compression="+compression, func(b *testing.B) {
			cfg := config.Default()
			m := &cfg.Components.Migration
			m.Hosts, m.Guests, m.GuestMemory, m.Ownership = 2, 1, 64<<20, "none"
			m.Mode, m.Compression = "internet", "auto"
			if compression == "none-forced" {
				m.Mode = "datacenter" // the same link below, the codec left alone
				m.Compression = "none"
			}
			link := cfg.Components.Migration.Internet
			shaped := *cfg
			shaped.Components.Migration.Mode = "internet"
			f := internetFabric(b, &shaped)
			c, err := New(components.Deps{Config: cfg, Seed: 1, Dial: f.DialerFor("migration")})
			if err != nil {
				b.Fatal(err)
			}
			cl := c.(*Cluster)
			if err := cl.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer cl.Stop(context.Background())
			var raw float64
			var took time.Duration
			var wire int64
			var last string
			for b.Loop() {
				mv, err := cl.begin("guest-0")
				if err != nil {
					b.Fatal(err)
				}
				rep, ch := cl.run(context.Background(), mv)
				cl.end(mv)
				if !rep.Moved() {
					b.Fatalf("migration: %v %v", rep.Outcome, rep.Err)
				}
				raw += float64(rep.RawBytes)
				wire += rep.WireBytes
				for _, r := range rep.Rounds {
					took += r.Took
				}
				last = ch.Name
			}
			guest := raw / took.Seconds()
			b.ReportMetric(guest/1e6, "guest_MB/s")
			b.ReportMetric(float64(wire)/took.Seconds()/1e6, "wire_MB/s")
			b.ReportMetric(float64(link.Bandwidth)/1e6, "cap_MB/s")
			b.ReportMetric(guest/float64(link.Bandwidth), "x_cap")
			b.Logf("codec %s: guest %.0f MB/s over a %.0f MB/s, %v link: %.1fx the cap", last, guest/1e6,
				float64(link.Bandwidth)/1e6, link.RTT.Std(), guest/float64(link.Bandwidth))
		})
	}
}
