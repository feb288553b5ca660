package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzParse holds Parse to its contract on any input: no panic; either a
// config that validates and survives a marshal/parse round trip, or Errors
// whose problems are one non-empty line each.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML)
	files, _ := filepath.Glob("testdata/*.yaml")
	good, _ := filepath.Glob("testdata/good/*.yaml")
	for _, file := range append(files, good...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		cfg, err := Parse(data)
		// A config small enough to fuzz must not take long: slowness here
		// is an algorithmic blow-up (aliases, quadratic checks).
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Parse took %v", d)
		}
		if err != nil {
			if cfg != nil {
				t.Fatal("Parse returned a config and an error")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %#v", err)
			}
			for _, p := range errs {
				if p.Msg == "" || strings.Contains(p.String(), "\n") {
					t.Fatalf("bad problem %q", p.String())
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse succeeded but Validate fails: %v", err)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Fatalf("round trip changed the config:\n%s", out)
		}
	})
}
