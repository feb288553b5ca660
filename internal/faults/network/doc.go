// Package network holds the link fault kinds, one file each: partition,
// delay, bandwidth, blackhole, reset and loss. They put rules on soakd's
// userspace network fabric (internal/fabric), through which every
// node-to-node connection of a component is routed, and verify each
// injection with a real probe over the faulted link before reporting it
// in force (loss, being statistical, is checked by the tests instead).
//
// A fault's target is a component's selector ("raft/leader",
// "raft/minority"), resolved when it fires into the target's nodes and the
// rest of the component; partition cuts them from the rest (isolate, split
// or one way), the other kinds act on every link to or from the target's
// nodes. kind.go holds what the kinds share: resolving targets, the
// inject-verify-revert flow and parameter parsing. A component whose links
// do not run through the fabric (components.ExternalLinks: nodes soakd did
// not start) is refused with its reason, not faulted in name only.
package network
