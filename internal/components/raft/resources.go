package raft

import (
	"fmt"
	"sort"

	"github.com/soakd/soakd/internal/components"
)

var _ components.NodeResources = (*Cluster)(nil)

// NodeDir implements components.NodeResources: the node's bbolt store and
// snapshots live there.
func (c *Cluster) NodeDir(id string) (string, error) {
	n := c.node(id)
	if n == nil {
		return "", fmt.Errorf("raft: %w: %q", components.ErrNoSuchNode, id)
	}
	return n.dir, nil
}

// ListenAddrs implements components.NodeResources: the node's Raft
// transport listener (none while the cluster is down).
func (c *Cluster) ListenAddrs(id string) ([]string, error) {
	if c.node(id) == nil {
		return nil, fmt.Errorf("raft: %w: %q", components.ErrNoSuchNode, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for addr, n := range c.addrs {
		if n == id {
			out = append(out, addr)
		}
	}
	sort.Strings(out)
	return out, nil
}
