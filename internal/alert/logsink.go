package alert

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

type logSink struct{ log *slog.Logger }

// NewLogSink returns a sink that writes one line per alert: WARN while
// firing, INFO when resolved, with its labels, summary and evidence. A nil
// logger means slog.Default().
func NewLogSink(log *slog.Logger) Sink {
	if log == nil {
		log = slog.Default()
	}
	return &logSink{log: log}
}

func (s *logSink) Name() string { return "log" }

func (s *logSink) Send(ctx context.Context, alerts []Alert) error {
	for _, a := range alerts {
		level, msg := slog.LevelWarn, "alert firing"
		if !a.Firing() {
			level, msg = slog.LevelInfo, "alert resolved"
		}
		labels := a.LabelSet()
		names := make([]string, 0, len(labels))
		for k := range labels {
			names = append(names, k)
		}
		slices.Sort(names)
		la := make([]any, 0, len(names))
		for _, k := range names {
			la = append(la, slog.String(k, labels[k]))
		}
		attrs := []any{
			slog.String("alertname", a.Name),
			slog.Group("labels", la...),
			slog.String("summary", a.Annotations["summary"]),
			slog.String("evidence", a.Annotations["evidence"]),
			slog.Time("starts_at", a.StartsAt),
		}
		if !a.Firing() {
			attrs = append(attrs, slog.Time("ends_at", a.EndsAt), slog.Duration("duration", a.EndsAt.Sub(a.StartsAt).Round(time.Second)))
		}
		s.log.Log(ctx, level, msg, attrs...)
	}
	return nil
}
