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
	return n.dir, nil
}

// ListenAddrs implements components.NodeResources: the replica's listener
// (none while it is down).
func (c *Cluster) ListenAddrs(id string) ([]string, error) {
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running || n.ln == nil {
		return nil, nil
	}
	return []string{n.ln.Addr().String()}, nil
}
