package migration

import (
	"errors"

	"github.com/soakd/soakd/internal/components"
)

var _ components.NodeResources = (*Cluster)(nil)

// NodeDir implements components.NodeResources. Hosts keep guests in
// memory; what the component writes (in-flight migration records) lives
// in its own state dir, shared by every host.
func (c *Cluster) NodeDir(id string) (string, error) {
	if _, err := c.host(id); err != nil {
		return "", err
	}
	if c.stateDir == "" {
		return "", errors.New("migration: no state dir")
	}
	return c.stateDir, nil
}

// ListenAddrs implements components.NodeResources: the host's migration
// listener (none while it is down).
func (c *Cluster) ListenAddrs(id string) ([]string, error) {
	h, err := c.host(id)
	if err != nil {
		return nil, err
	}
	if a := h.Addr(); a != "" {
		return []string{a}, nil
	}
	return nil, nil
}
