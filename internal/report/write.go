package report

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/soakd/soakd/internal/fsutil"
)

// Formats the report is written in.
var Formats = []string{"html", "md", "json"}

// DefaultOutDir is where a run's report goes inside its state dir.
const DefaultOutDir = "report"

// render writes r in one format.
func render(w io.Writer, format string, r Report, in Inputs, opts HTMLOptions) error {
	switch format {
	case "html":
		return WriteHTML(w, r, in.History, opts)
	case "md":
		return WriteMarkdown(w, r)
	case "json":
		return WriteJSON(w, r)
	}
	return fmt.Errorf("format %q is not one of %s", format, strings.Join(Formats, ", "))
}

func htmlOptions(in Inputs, href string) HTMLOptions {
	opts := HTMLOptions{StateDirHref: href}
	if in.Config != nil {
		opts.Window = in.Config.LeakCheck.Window.Std()
	}
	return opts
}

// Handler serves the report of the run in stateDir, computed afresh on
// each request from what is on disk (the history is at most its save
// interval old): HTML, or ?format=md or json.
func Handler(stateDir string) http.Handler {
	var one sync.Mutex // a report reads the whole journal: one at a time
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		one.Lock()
		defer one.Unlock()
		format := req.URL.Query().Get("format")
		if format == "" {
			format = "html"
		}
		if !slices.Contains(Formats, format) {
			http.Error(w, fmt.Sprintf("format %q is not one of %s", format, strings.Join(Formats, ", ")), http.StatusBadRequest)
			return
		}
		in, err := ReadStateDir(stateDir)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var b bytes.Buffer
		if err := render(&b, format, Build(in), in, htmlOptions(in, "")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", map[string]string{"html": "text/html; charset=utf-8",
			"md": "text/markdown; charset=utf-8", "json": "application/json"}[format])
		_, _ = w.Write(b.Bytes())
	})
}

// WriteFiles builds the report of the run in stateDir and writes
// report.<format> for each format into outDir (default
// <stateDir>/report), each atomically. It returns the report and the files
// written.
func WriteFiles(stateDir, outDir string, formats []string) (Report, []string, error) {
	for _, f := range formats {
		if !slices.Contains(Formats, f) {
			return Report{}, nil, fmt.Errorf("--format: %q is not one of %s", f, strings.Join(Formats, ", "))
		}
	}
	in, err := ReadStateDir(stateDir)
	if err != nil {
		return Report{}, nil, err
	}
	r := Build(in)
	if outDir == "" {
		outDir = filepath.Join(stateDir, DefaultOutDir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return r, nil, err
	}
	href := ""
	if absOut, err1 := filepath.Abs(outDir); err1 == nil {
		if absState, err2 := filepath.Abs(stateDir); err2 == nil {
			if rel, err3 := filepath.Rel(absOut, absState); err3 == nil {
				href = filepath.ToSlash(rel)
			}
		}
	}
	opts := htmlOptions(in, href)
	var written []string
	for _, f := range formats {
		var b bytes.Buffer
		if err := render(&b, f, r, in, opts); err != nil {
			return r, written, err
		}
		path := filepath.Join(outDir, "report."+f)
		if err := fsutil.WriteBytes(path, 0o644, b.Bytes()); err != nil {
			return r, written, err
		}
		written = append(written, path)
	}
	return r, written, nil
}
