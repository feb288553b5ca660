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
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up || h.ln == nil {
		return nil, nil
	}
	return []string{h.ln.Addr().String()}, nil
}
