// Package fsutil is the one home of soakd's small file helpers: atomic
// writes fsync'd the same way everywhere (temp file in the same dir, fsync,
// rename, fsync the dir, via renameio), and pruning a directory to its
// newest N entries. It imports nothing of soakd's.
package fsutil
