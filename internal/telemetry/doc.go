// Package telemetry owns soakd's outward observability: the Prometheus
// registry and the HTTP server (/metrics, /healthz, /readyz, /debug/pprof/,
// /api/v1/*), the OpenTelemetry tracer provider, and the slog set-up
// (journald-friendly under systemd).
//
// It sits at the top of the data flow and sees the run only through the
// small function hooks in ServerOptions, so it imports no other soakd
// package and can be tested alone.
package telemetry
