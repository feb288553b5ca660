package profiling

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuf collects a logger's output for assertions.
type logBuf struct{ testutil.SyncBuffer }

func (b *logBuf) lines(substr string) []string {
	var out []string
	for l := range strings.Lines(b.String()) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func newTestLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func profilingConfig(server string, interval time.Duration, maxBytes int64) config.Profiling {
	return config.Profiling{
		Pyroscope: config.Pyroscope{ServerAddress: server, ApplicationName: "soakd-test"},
		Snapshots: config.Snapshots{Interval: config.Duration(interval), MaxBytes: config.ByteSize(maxBytes)},
	}
}
