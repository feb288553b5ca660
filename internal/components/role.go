package components

// Role is a part a node or link plays that a fault kind aims at, whatever
// the component calls it: a fault kind says which roles it hits, a
// component says which of its target selectors plays each role, and the
// random fault schedule pairs them without naming either.
type Role string

// The roles fault kinds aim at.
const (
	// RoleLeader is the node that orders or coordinates (a Raft leader, a
	// PBFT primary).
	RoleLeader Role = "leader"
	// RoleFollower is one node that is not the leader.
	RoleFollower Role = "follower"
	// RoleMinority is a minority group of nodes.
	RoleMinority Role = "minority"
	// RoleLink is a data path between two hosts (a migration link).
	RoleLink Role = "link"
	// RoleByzantine is a replica of a Byzantine-fault-tolerant component
	// that a fault can make deviate from its protocol (a PBFT primary or
	// backup).
	RoleByzantine Role = "byzantine"
	// RoleMessages is a node whose protocol messages a fault can drop,
	// duplicate or reorder one at a time (components.MessageFaults).
	RoleMessages Role = "messages"
)

// Target is a selector the component resolves when a fault fires
// ("leader" → "node-2") and the role it plays.
type Target struct {
	Role     Role
	Selector string
}
