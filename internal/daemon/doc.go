// Package daemon assembles one soakd process: it takes a validated config,
// opens the run on its state dir, starts telemetry, builds the registered
// components and engines, and owns the signal-driven lifetime and the
// shutdown order. It exists so cmd/soakd stays a thin flag parser and the
// wiring is testable in-process.
//
// daemon may import every internal package; nothing imports daemon.
package daemon
