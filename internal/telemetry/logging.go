package telemetry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
)

// NewLogger returns soakd's logger. Under systemd (JOURNAL_STREAM set, see
// systemd.exec(5)) lines carry an sd-daemon(3) "<N>" priority prefix and no
// timestamp, since journald adds its own; elsewhere they are plain logfmt.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	if os.Getenv("JOURNAL_STREAM") != "" {
		return slog.New(newJournalHandler(w, level))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// journalHandler formats with a TextHandler into a buffer, then writes the
// record with its syslog priority in front, as one write per line.
type journalHandler struct {
	mu    *sync.Mutex
	out   io.Writer
	buf   *bytes.Buffer
	inner slog.Handler
}

func newJournalHandler(w io.Writer, level slog.Level) *journalHandler {
	buf := &bytes.Buffer{}
	return &journalHandler{
		mu: &sync.Mutex{}, out: w, buf: buf,
		inner: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		}}),
	}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	h.buf.WriteString(priority(r.Level))
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.out.Write(h.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{mu: h.mu, out: h.out, buf: h.buf, inner: h.inner.WithAttrs(as)}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{mu: h.mu, out: h.out, buf: h.buf, inner: h.inner.WithGroup(name)}
}

// priority maps slog levels to syslog priorities (sd-daemon(3)).
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	default:
		return "<7>"
	}
}
