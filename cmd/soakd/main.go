// Command soakd is the soak-and-chaos harness daemon. This package only
// parses flags and calls internal packages; see ../../README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, stable for scripts and systemd.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure, bad config, failed checks
	exitUsage   = 2 // bad flags or arguments
)

// usageError marks errors in how soakd was invoked.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError carries an exit code with an already-printed message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr, builtins()))
}

func execute(args []string, stdout, stderr io.Writer, b built) int {
	root := newRootCmd(stdout, stderr, b)
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "soakd: %v\nRun 'soakd --help' for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "soakd: %v\n", err)
		return exitFailure
	}
}

func newRootCmd(stdout, stderr io.Writer, b built) *cobra.Command {
	root := &cobra.Command{
		Use:   "soakd",
		Short: "Soak-and-chaos harness: sustained load, seeded faults, correctness checks and leak alerts",
		Long: `soakd runs a multi-day soak (72h by default) against real Raft, PBFT and
live-migration components: it sustains an open-loop load, injects faults on a
seeded schedule, checks that nothing acknowledged is lost, profiles itself and
alerts on leaks. A killed daemon resumes the same run from its state dir.

Start with:
  soakd run                       # embedded default config, state in ./soakd-state
  soakd status                    # progress of the running daemon
  soakd check-config FILE         # validate a config before you deploy it`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return nil
		},
		// A bare "soakd" is a usage error, not a silent success.
		RunE: func(cmd *cobra.Command, args []string) error {
			_ = cmd.Help()
			return usageError{errors.New("no command given")}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(stderr, b), newCheckConfigCmd(stdout, b), newPlanCmd(stdout, b), newStatusCmd(stdout), newReportCmd(stdout), newVersionCmd(stdout),
		newMigrateBenchCmd(stdout), newStressCmd(stdout, stderr), newChaosCmd(stdout, stderr, b))
	root.AddCommand(newNodeCmd(stderr))
	for _, c := range root.Commands() {
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	}
	return root
}

// exactArgs is cobra.ExactArgs, reported as a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
