package fsutil

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/renameio/v2"
)

// WriteFile replaces path atomically with what write produces: a reader
// sees the old file or the whole new one, and once it returns nil the new
// file survives a power cut (the file and then its directory are fsync'd).
// On error the old file is untouched and no temp file is left.
func WriteFile(path string, perm os.FileMode, write func(io.Writer) error) error {
	pf, err := renameio.NewPendingFile(path, renameio.WithPermissions(perm))
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if err := write(pf); err != nil {
		return err
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteBytes is WriteFile for data already in memory.
func WriteBytes(path string, perm os.FileMode, data []byte) error {
	return WriteFile(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// SyncDir fsyncs directories in order, so the renames and creations in
// them survive a power cut.
func SyncDir(dirs ...string) error {
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = d.Sync()
		_ = d.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", dir, err)
		}
	}
	return nil
}

// KeepNewest removes from dir all but the keep last of names in sort order
// (names must sort chronologically, e.g. start with a UTC timestamp); a
// name may be a file or a directory. It returns the first error and goes
// on with the rest.
func KeepNewest(dir string, names []string, keep int) error {
	names = append([]string(nil), names...)
	sort.Strings(names)
	var first error
	for len(names) > max(keep, 0) {
		if err := os.RemoveAll(filepath.Join(dir, names[0])); err != nil && first == nil {
			first = err
		}
		names = names[1:]
	}
	return first
}
