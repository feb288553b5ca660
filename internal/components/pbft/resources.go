package pbft

import "github.com/soakd/soakd/internal/components"

var _ components.NodeResources = (*Cluster)(nil)

// NodeDir implements components.NodeResources: the replica's log and
// checkpoints live there.
func (c *Cluster) NodeDir(id string) (string, error) {
	n, err := c.node(id)
	if err != nil {
		return "", err
	}
	return n.stateDir(), nil
}

// ListenAddrs implements components.NodeResources: the replica's listener
// (none while it is down).
func (c *Cluster) ListenAddrs(id string) ([]string, error) {
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	if a := n.listenAddr(); a != "" {
		return []string{a}, nil
	}
	return nil, nil
}
