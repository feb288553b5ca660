// Package configtest runs the bad-config files of a testdata directory: each
// file starts with "# error: " comment lines naming, in order, the problems
// config.Load must report for it. The config package keeps the schema's
// files; a registry that validates configs (the fault kinds') keeps its own.
package configtest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/soakd/soakd/internal/config"
)

// BadConfigs loads every file matching glob with checks and compares the
// problems with the file's "# error: " lines. It fails when fewer than min
// files match, so a moved directory cannot pass by testing nothing.
func BadConfigs(t *testing.T, glob string, min int, checks ...config.Checker) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < min {
		t.Fatalf("only %d bad configs match %s, want at least %d", len(files), glob, min)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := ExpectedErrors(data)
			if len(want) == 0 {
				t.Fatal("no '# error: ' lines at the top of the file")
			}
			cfg, err := config.Load(file, checks...)
			if err == nil {
				t.Fatalf("Load succeeded, want errors:\n%s", strings.Join(want, "\n"))
			}
			if cfg != nil {
				t.Errorf("Load returned a config along with errors")
			}
			got := ProblemLines(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("problems:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if err.Error() != strings.Join(want, "\n") {
				t.Errorf("Error() = %q, want the problems one per line", err.Error())
			}
		})
	}
}

// ExpectedErrors reads the "# error: " lines from the comment block at the
// top of a testdata file.
func ExpectedErrors(data []byte) []string {
	var want []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if msg, ok := strings.CutPrefix(line, "# error: "); ok {
			want = append(want, msg)
		}
	}
	return want
}

// ProblemLines returns err's problems as "path: msg" lines; err must be
// config.Errors.
func ProblemLines(t *testing.T, err error) []string {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not config.Errors: %v", err, err)
	}
	return errs.Lines()
}
