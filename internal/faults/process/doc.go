// Package process is the crash fault kind (Spec): a node of a component
// dies abruptly (no graceful shutdown, in-memory state lost) and restarts
// from its own disk when the fault is reverted. It drives components
// through the components.Nodes contract.
package process
