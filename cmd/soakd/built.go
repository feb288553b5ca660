package main

import (
	"github.com/soakd/soakd/internal/components"
	compbuiltin "github.com/soakd/soakd/internal/components/builtin"
	"github.com/soakd/soakd/internal/faults"
	faultbuiltin "github.com/soakd/soakd/internal/faults/builtin"
)

// built is what this soakd is built with: its components and fault kinds.
// Every command reads them from here, so a test can run the real commands
// with a component or kind of its own added.
type built struct {
	components *components.Registry
	faults     *faults.Registry
}

// builtins is the binary's own set.
func builtins() built {
	return built{components: compbuiltin.Registry(), faults: faultbuiltin.Registry()}
}
