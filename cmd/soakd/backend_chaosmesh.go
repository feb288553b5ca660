//go:build chaosmesh

package main

import (
	"github.com/soakd/soakd/internal/chaosmesh"
	"github.com/soakd/soakd/internal/daemon"
)

// faultBackend is faults.backend chaosmesh: Chaos Mesh objects in the
// cluster of faults.chaosmesh.kubeconfig.
func faultBackend() daemon.FaultBackend {
	return chaosmesh.RunBackend(chaosmesh.NewClient)
}
