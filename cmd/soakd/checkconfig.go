package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/config"
)

func newCheckConfigCmd(stdout io.Writer, b built) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config FILE",
		Short: "Validate a config file: prints ok, or one line per problem",
		Long: `Validate a soakd config file without running anything.

Prints "ok" and exits 0, or prints one line per problem, each starting with
the field path (for example "load.raft.rate: must be > 0"), and exits 1.
Unknown keys are errors, so a typo never silently falls back to a default.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			_, err := config.Load(args[0], b.faults)
			if err == nil {
				fmt.Fprintln(stdout, "ok")
				return nil
			}
			var probs config.Errors
			if errors.As(err, &probs) {
				for _, p := range probs {
					fmt.Fprintln(stdout, p.String())
				}
				return exitError{exitFailure}
			}
			return err
		},
	}
}
