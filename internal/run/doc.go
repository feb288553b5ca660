// Package run owns one soak run: its state dir, run id, seed, clock,
// checkpoint and resume, the event journal, the lifecycle (ordered start and
// shutdown) and the systemd notify protocol.
//
// State that must survive kill -9 is written atomically (temp file, fsync,
// rename, fsync of the directory); the journal is append-only JSON lines,
// each written to the file when appended (it survives kill -9 at once) and
// fsync'd in batches, and tolerates a torn last line. A resumed run's
// elapsed time is the later of the checkpoint's and the journal's last
// event's, so it never goes back. --fresh moves run.json into the archive
// last and a start finishes an archive a crash cut off. Every timer takes
// the injected clock so a 72-hour run is tested in milliseconds.
//
// run imports config and components; nothing below it imports run.
package run
