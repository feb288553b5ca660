package config_test

import (
	"testing"

	"github.com/soakd/soakd/internal/config/configtest"
)

// TestBadConfigs: the schema's problems, without any registry. Problems with
// fault kinds are the kinds' registry's (internal/faults/builtin/testdata).
func TestBadConfigs(t *testing.T) {
	configtest.BadConfigs(t, "testdata/*.bad.yaml", 27)
}
