package builtin

import (
	"testing"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/config/configtest"
)

// TestBadConfigs: the config problems only the built-in kinds can see:
// unknown kinds, kinds never drawn at random, and each bad parameter at its
// own field.
func TestBadConfigs(t *testing.T) {
	configtest.BadConfigs(t, "testdata/*.bad.yaml", 4, Registry())
}

// TestDefaultConfigIsValid: the embedded default names only built-in kinds.
func TestDefaultConfigIsValid(t *testing.T) {
	if err := config.Default().Validate(Registry()); err != nil {
		t.Fatal(err)
	}
}
