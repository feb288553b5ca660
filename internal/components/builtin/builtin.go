// Package builtin is the one place that names the components built into
// soakd: adding a component is one RegisterSpec line here plus its own
// package. The daemon names none.
package builtin

import (
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/migration"
	"github.com/soakd/soakd/internal/components/pbft"
	"github.com/soakd/soakd/internal/components/raft"
)

// Registry returns the registry of every component built into this soakd,
// in the order they are built and started.
func Registry() *components.Registry {
	reg := components.NewRegistry()
	for _, s := range []components.Spec{raft.Spec(), pbft.Spec(), migration.Spec()} {
		if err := reg.RegisterSpec(s); err != nil {
			panic(err) // a duplicate name is a programming error
		}
	}
	return reg
}
