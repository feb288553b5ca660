// Package daemon assembles one soakd process: it takes a config, validates
// its fault kinds against the registry it is given, opens the run on its
// state dir, starts telemetry, builds the network fabric, the registered
// components (components.Registry) and the engines (alert delivery,
// profiling, leak checking, a linearizability checker per component with a
// KV history, the fault kinds of faults.Registry and their runner, a load
// generator per component with a rate load), and owns the signal-driven
// lifetime and the shutdown order. It names no component and no fault
// kind: everything comes from the registries, so cmd/soakd (or a test)
// decides what is built in.
//
// daemon may import every internal package; nothing imports daemon.
package daemon
