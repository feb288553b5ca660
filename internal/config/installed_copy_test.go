package config

import (
	"bytes"
	"os"
	"testing"
)

// The config `make install` puts at /etc/soakd/soakd.yaml is the embedded
// default, byte for byte, so systemd runs what `make run` runs.
func TestInstalledDefaultMatchesEmbedded(t *testing.T) {
	installed, err := os.ReadFile("../../systemd/soakd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(installed, DefaultYAML) {
		t.Fatal("systemd/soakd.yaml differs from internal/config/default.yaml: cp internal/config/default.yaml systemd/soakd.yaml")
	}
}
