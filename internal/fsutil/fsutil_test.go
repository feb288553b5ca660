package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := WriteBytes(path, 0o600, []byte("one")); err != nil {
		t.Fatal(err)
	}
	// A failing writer leaves the old content and no temp file behind.
	boom := errors.New("boom")
	err := WriteFile(path, 0o600, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Fatalf("content %q after a failed write", b)
	}
	if err := WriteBytes(path, 0o600, []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	entries, _ := os.ReadDir(dir)
	if string(b) != "two" || st.Mode().Perm() != 0o600 || len(entries) != 1 {
		t.Fatalf("content %q, mode %v, %d entries", b, st.Mode(), len(entries))
	}
}

func TestKeepNewest(t *testing.T) {
	dir := t.TempDir()
	names := []string{"20260102-b", "20260101-a", "20260104-d", "20260103-c"}
	for _, n := range names {
		if err := os.Mkdir(filepath.Join(dir, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := KeepNewest(dir, names, 2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"20260103-c", "20260104-d"}) {
		t.Fatalf("left %v", left)
	}
}
