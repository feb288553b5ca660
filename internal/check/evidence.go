package check

import (
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

// writeEvidence saves porcupine's visualization of the failing key's window
// and keeps the newest EvidenceKeep files of this component.
func (l *Linearizability) writeEvidence(key string, model porcupine.Model, info porcupine.LinearizationInfo) string {
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
	err := fsutil.WriteFile(path, 0o600, func(w io.Writer) error { return porcupine.Visualize(model, info, w) })
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
