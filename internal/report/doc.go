// Package report is the end-of-run report: one page that says what a soak
// found (did anything leak, was anything lost, did the load hold, what did
// each fault do) and how to run it again.
//
// Everything in it is computed from the run's state dir: the journal
// (incarnations, faults with their verified effect and residue, alerts,
// invariant violations, migrations), the history (package history: leak
// signals, op rates and latencies, downsampled to a fixed size), the
// effective config.yaml and the evidence files. A section with no data
// says so; the verdict of a run with a target it could not judge is
// "incomplete", never "pass".
//
// Build is the pure core (inputs in, Report out, bounded by maxRows
// whatever the journal's length); ReadStateDir gathers the inputs;
// WriteMarkdown, WriteJSON and WriteHTML render one Report (the HTML is
// one self-contained file: inline CSS, plots drawn with gonum/plot as
// inline SVG, no script, no network fetch); WriteFiles and Handler are
// what `soakd report`, the daemon at the end of a completed run, and
// GET /report use.
//
// report reads the outputs of every other room and is imported only by
// the daemon and the CLI.
package report
