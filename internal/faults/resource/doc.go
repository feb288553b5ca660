// Package resource holds the resource fault kinds, one file each: cpu,
// memory, fds, disk and connections. A kind that would load soakd itself
// (burning CPU, holding memory, fsync-heavy writes) runs in a child
// process, soakd re-executing itself as `soakd stress <kind>`, so soakd's
// own profiles, heap and leak signals stay clean; the child dies with its
// parent (Pdeathsig, and it watches for re-parenting), so a kill -9 of
// soakd never leaves one behind. Descriptors and connections are held in
// soakd itself and counted for the open-fds signal (package offheap). Each
// kind is bounded by faults.resource, verified after injection and fully
// reverted; disk fault files (BalloonPrefix) live under the state dir and a
// starting run removes any a killed one left.
package resource
