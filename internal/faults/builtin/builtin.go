// Package builtin is the one place that names the fault kinds built into
// soakd: adding a kind is its own file (or package) with a faults.Spec,
// plus one line here. Config validation, `soakd plan`, the random schedule
// and the runner read the registry this returns, so nothing else changes.
package builtin

import (
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/faults/byzantine"
	"github.com/soakd/soakd/internal/faults/leak"
	"github.com/soakd/soakd/internal/faults/message"
	"github.com/soakd/soakd/internal/faults/network"
	"github.com/soakd/soakd/internal/faults/process"
	"github.com/soakd/soakd/internal/faults/resource"
)

// Registry returns the registry of every fault kind built into this soakd.
func Registry() *faults.Registry {
	specs := append([]faults.Spec{leak.Spec(), process.Spec(), byzantine.Spec(), resource.CPU(),
		resource.Memory(), resource.FDs(), resource.Disk(), resource.Connections()}, append(network.Specs(), message.Specs()...)...)
	reg, err := faults.NewRegistry(specs...)
	if err != nil {
		panic(err) // a duplicate or incomplete spec is a programming error
	}
	return reg
}
