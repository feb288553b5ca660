package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config, at a dotted field path such as
// "faults.timeline[0].kind" ("" when it concerns the whole document).
type Problem struct {
	Path string
	Msg  string
}

// String returns "path: msg", or msg alone when the path is empty.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Errors is every problem found in a config. Parse and Load list decoding
// problems in document order, then validation problems in field order;
// Validate lists them in field order. Retrieve it with errors.As.
type Errors []Problem

// Error returns one problem per line.
func (e Errors) Error() string { return strings.Join(e.Lines(), "\n") }

// Lines returns each problem as "path: msg".
func (e Errors) Lines() []string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return lines
}

// maxProblems bounds the problems kept: a hostile or garbled file could
// otherwise produce millions, and nobody reads past the first screens.
const maxProblems = 1000

// problems collects Problems; the zero value is ready to use.
type problems struct {
	list    Errors
	dropped int
}

func (ps *problems) add(path, msg string) {
	// One problem per line, whatever the message quotes from the input.
	ps.addProblem(Problem{Path: path, Msg: strings.ReplaceAll(msg, "\n", " ")})
}

func (ps *problems) addProblem(p Problem) {
	if len(ps.list) >= maxProblems {
		ps.dropped++
		return
	}
	ps.list = append(ps.list, p)
}

// err returns the problems as an error, or nil (not a nil Errors in a
// non-nil interface) when there are none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	if ps.dropped > 0 {
		return append(ps.list[:len(ps.list):len(ps.list)], Problem{Msg: fmt.Sprintf("and %d more problems", ps.dropped)})
	}
	return ps.list
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// field appends a key to a path. Keys that would make the path ambiguous or
// span lines (dots, spaces, newlines) are quoted: mix["a.b"].
func field(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a list index to a path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
