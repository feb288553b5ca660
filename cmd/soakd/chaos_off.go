//go:build !chaosmesh

package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
)

// newChaosCmd, in a soakd built without the chaosmesh tag, says how to get
// it. Linking Chaos Mesh's API (with controller-runtime and client-go)
// into every soakd would double the binary (41 → 78 MB) and the resident
// memory of every soakd process, node processes and stress children
// included (22 → 51 MB), measured; so it is a build of its own:
// `make build-k8s` (go build -tags chaosmesh).
func newChaosCmd(_, _ io.Writer, _ built) *cobra.Command {
	return &cobra.Command{
		Use:   "chaos",
		Short: "Chaos Mesh objects of the fault plan (in a soakd built with -tags chaosmesh)",
		// Whatever follows (render, its flags) gets the same answer.
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this soakd is built without Chaos Mesh support: build it with `make build-k8s` (go build -tags chaosmesh ./cmd/soakd)")
		},
	}
}
