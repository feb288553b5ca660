package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/faults/resource"
)

// newStressCmd is the hidden `soakd stress <kind>`: the child process a
// resource fault runs (package resource), killed with its parent.
func newStressCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:                resource.StressCommand + " KIND [flags]",
		Short:              "Run a resource fault's child process (used by soakd itself)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return resource.Stress(args, stdout, stderr, resource.StopOnSignal())
		},
	}
}
