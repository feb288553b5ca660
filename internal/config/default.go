package config

import (
	_ "embed"
	"reflect"
)

// DefaultYAML is the default config, every key written out with a comment:
// what `soakd run` uses without --config, and the starting point of every
// user file.
//
//go:embed default.yaml
var DefaultYAML []byte

// Default returns a fresh copy of the default config, safe to modify.
func Default() *Config {
	var cfg Config
	root, err := parseNode(DefaultYAML)
	if err != nil {
		panic("config: embedded default.yaml: " + err.Error())
	}
	var d decoder
	if root != nil {
		d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	}
	// Unreachable once TestDefault passes: the file is compiled in.
	if err := d.ps.err(); err != nil {
		panic("config: embedded default.yaml: " + err.Error())
	}
	return &cfg
}
