// Package resource holds the resource fault kinds, one file each. A
// resource fault that would load soakd itself (burning CPU, holding
// memory) runs in a child process, soakd re-executing itself as
// `soakd stress <kind>`, so soakd's own profiles, heap and leak signals
// stay clean; the child dies with its parent (Pdeathsig), so a kill -9 of
// soakd never leaves a burner behind. Each kind is bounded, verified after
// injection, and fully reverted.
//
// Built so far: cpu (burn cores at a load share, verified by the child's
// measured CPU time).
package resource
