package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/daemon"
	"github.com/soakd/soakd/internal/report"
)

func newReportCmd(stdout io.Writer) *cobra.Command {
	var stateDir, out, format string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write the run report (HTML, Markdown, JSON) from a state dir",
		Long: `Compute the report of the run in --state-dir from its journal, history,
config and evidence, and write report.html (one self-contained page with
plots), report.md (a summary for a ticket) and report.json (the verdicts
for machines) into --out (default <state-dir>/report). It works on a
running, stopped, killed or completed run. Exit status 0 whatever the
verdict; the verdict is the first line printed.`,
		Example: `  soakd report --state-dir /var/lib/soakd
  soakd report --state-dir ./soakd-state --out /tmp/r --format md`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			formats := report.Formats
			if format != "" {
				formats = strings.Split(format, ",")
			}
			r, files, err := report.WriteFiles(daemon.ResolveStateDir(stateDir, nil), out, formats)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "run %s: %s\n", r.Run.ID, r.Verdict)
			for _, f := range files {
				fmt.Fprintln(stdout, f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the run's state dir (default: as soakd run picks it)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the report into (default <state-dir>/report)")
	cmd.Flags().StringVar(&format, "format", "", "html, md or json, or a comma-separated list (default: all three)")
	return cmd
}
