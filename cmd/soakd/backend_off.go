//go:build !chaosmesh

package main

import "github.com/soakd/soakd/internal/daemon"

// faultBackend is nil without the chaosmesh build: the daemon then refuses
// faults.backend chaosmesh, saying how to build it (see chaos_off.go).
func faultBackend() daemon.FaultBackend { return nil }
