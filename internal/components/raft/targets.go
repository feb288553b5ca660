package raft

import (
	"fmt"
	"slices"

	hraft "github.com/hashicorp/raft"

	"github.com/soakd/soakd/internal/components"
)

var _ components.TargetResolver = (*Cluster)(nil)

// Resolve implements components.TargetResolver: "leader" (the running
// node that leads with the highest term), "follower" (one running
// non-leader, chosen by pick), "node-N", "minority" (the largest set a
// quorum survives without, the leader among it when there is one),
// "majority" and "all".
func (c *Cluster) Resolve(selector string, pick uint64) ([]string, error) {
	c.mu.RLock()
	var all, running []string
	leader := ""
	var leaderTerm uint64
	for _, n := range c.nodes {
		all = append(all, n.id)
		if n.inst == nil {
			continue
		}
		running = append(running, n.id)
		if n.inst.raft.State() == hraft.Leader {
			if t := n.inst.raft.CurrentTerm(); leader == "" || t > leaderTerm {
				leader, leaderTerm = n.id, t
			}
		}
	}
	c.mu.RUnlock()
	return resolveTarget(selector, pick, all, running, leader)
}

// resolveTarget picks selector's nodes among all, of which running run and
// leader leads ("" none).
func resolveTarget(selector string, pick uint64, all, running []string, leader string) ([]string, error) {
	var followers []string
	for _, id := range running {
		if id != leader {
			followers = append(followers, id)
		}
	}
	minority := (len(all) - 1) / 2
	switch selector {
	case "leader":
		if leader == "" {
			return nil, fmt.Errorf("raft/leader: no leader now")
		}
		return []string{leader}, nil
	case "follower":
		if len(followers) == 0 {
			return nil, fmt.Errorf("raft/follower: no running follower")
		}
		return []string{followers[pick%uint64(len(followers))]}, nil
	case "minority", "majority":
		// The minority takes the leader first, then followers in order
		// from pick; the majority is everyone else.
		order := []string{}
		if leader != "" {
			order = append(order, leader)
		}
		for i := range followers {
			order = append(order, followers[(int(pick%uint64(max(len(followers), 1)))+i)%len(followers)])
		}
		for _, id := range all {
			if !slices.Contains(order, id) {
				order = append(order, id)
			}
		}
		if selector == "minority" {
			return order[:minority], nil
		}
		return order[minority:], nil
	case "all":
		return all, nil
	}
	if slices.Contains(all, selector) {
		return []string{selector}, nil
	}
	return nil, fmt.Errorf("raft/%s: unknown target (leader, follower, minority, majority, all or one of %v)", selector, all)
}
