package check

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/soakd/soakd/internal/fsutil"
)

// The evidence shell: porcupine's HTML of an illegal key-window, written
// atomically, newest EvidenceKeep kept per component.

// carriedMarker opens the comment after porcupine's HTML that holds what
// the window started from, so the evidence re-checks on its own.
const carriedMarker = "<!-- soakd-carried "

// Carried is what a key-window was checked from besides its operations:
// the values the key could hold when the window opened and the unknown
// writes of earlier windows that could still land. Without it a window's
// operations alone may be linearizable.
type Carried struct {
	Key     string   `json:"key"`
	InitAny bool     `json:"init_any"`
	Init    []string `json:"init"`    // Go-quoted values, or <absent>
	Pending []string `json:"pending"` // operation descriptions, as in the HTML
}

func carriedOf(key string, init regState, pending []regInput) Carried {
	c := Carried{Key: key, InitAny: init.top, Init: []string{}, Pending: []string{}}
	for _, v := range init.vals {
		c.Init = append(c.Init, decodeVal(v))
	}
	for _, in := range pending {
		c.Pending = append(c.Pending, describeOp(in, regOutput{}))
	}
	return c
}

// writeEvidence saves porcupine's visualization of the failing key's window,
// with the state it was checked from, and keeps the newest EvidenceKeep
// files of this component.
func (l *Linearizability) writeEvidence(key string, init regState, pending []regInput, info porcupine.LinearizationInfo) string {
	if l.o.EvidenceDir == "" {
		return ""
	}
	if err := os.MkdirAll(l.o.EvidenceDir, 0o755); err != nil {
		l.logger.Warn("linearizability: evidence dir", "err", err)
		return ""
	}
	hash := fnv.New64a()
	_, _ = hash.Write([]byte(key))
	prefix := "linearizability-" + safeName(l.o.Component) + "-"
	name := fmt.Sprintf("%s%s-%016x.html", prefix, l.clock.Now().UTC().Format("20060102T150405.000000000Z"), hash.Sum64())
	path := filepath.Join(l.o.EvidenceDir, name)
	carried, err := json.Marshal(carriedOf(key, init, pending))
	if err != nil {
		l.logger.Warn("linearizability: evidence", "err", err)
		return ""
	}
	err = fsutil.WriteFile(path, 0o600, func(w io.Writer) error {
		if err := porcupine.Visualize(registerModel(init, pending), info, w); err != nil {
			return err
		}
		// "--" cannot occur in JSON outside strings, and json.Marshal
		// escapes "<" and ">" inside them, so the comment cannot end early.
		_, err := fmt.Fprintf(w, "\n%s%s -->\n", carriedMarker, carried)
		return err
	})
	if err != nil {
		l.logger.Warn("linearizability: evidence", "err", err)
		return ""
	}
	l.pruneEvidence(prefix)
	return path
}

func (l *Linearizability) pruneEvidence(prefix string) {
	entries, err := os.ReadDir(l.o.EvidenceDir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ".html") {
			names = append(names, n)
		}
	}
	// The timestamp in the name sorts chronologically.
	if err := fsutil.KeepNewest(l.o.EvidenceDir, names, EvidenceKeep); err != nil {
		l.logger.Warn("linearizability: pruning evidence", "err", err)
	}
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
