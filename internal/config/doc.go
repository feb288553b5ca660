// Package config owns soakd's configuration (DESIGN.md §3): the Config type
// tree, the human units it is written in (durations with a day suffix, byte
// sizes, rates, percentages), the embedded default config, strict decoding
// that reports every problem with its field path, and validation.
//
// A user file overlays the defaults: every key has a default, unknown keys are
// errors, and a map given by the user replaces the default map. Parse and Load
// return Errors, one Problem per line in the form "path: message", which is
// what `soakd check-config` prints. What depends on how soakd is built (the
// fault kinds and their parameters) is checked by a Checker the caller
// passes in (faults.Registry), so the schema names no fault kind.
//
// It imports nothing internal: every other package depends on it, never the
// reverse.
package config
