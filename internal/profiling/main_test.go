package profiling

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuf collects a logger's output for assertions.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
