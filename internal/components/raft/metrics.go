package raft

import (
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the cluster's figures at scrape time, so nothing polls
// between scrapes. Per-node index gauges are exported only for running
// nodes; counters and on-disk sizes for every node.
type collector struct{ c *Cluster }

var (
	descLeaderChanges = prometheus.NewDesc("soakd_raft_leader_changes_total",
		"Leaderships acquired by any node of the raft component (each election won counts once).", nil, nil)
	descCommitIndex = prometheus.NewDesc("soakd_raft_commit_index",
		"Highest log index the node knows to be committed.", []string{"node"}, nil)
	descAppliedIndex = prometheus.NewDesc("soakd_raft_applied_index",
		"Highest log index the node has handed to its state machine.", []string{"node"}, nil)
	descApplyLag = prometheus.NewDesc("soakd_raft_apply_lag",
		"Committed log entries the node has not yet applied (commit index minus applied index).", []string{"node"}, nil)
	descSnapshots = prometheus.NewDesc("soakd_raft_snapshots_total",
		"Snapshots of the state machine the node took and persisted.", []string{"node"}, nil)
	descLogBytes = prometheus.NewDesc("soakd_raft_log_bytes",
		"Size on disk of the node's log store file (log and stable store).", []string{"node"}, nil)
	descNodesUp = prometheus.NewDesc("soakd_raft_nodes_up",
		"Raft nodes currently running.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeaderChanges, descCommitIndex, descAppliedIndex, descApplyLag, descSnapshots, descLogBytes, descNodesUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *collector) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(c.leaderChanges.Load()))
	c.mu.RLock()
	defer c.mu.RUnlock()
	up := 0
	for _, n := range c.nodes {
		ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(n.snapshots.Load()), n.id)
		if fi, err := os.Stat(filepath.Join(n.dir, logStoreFile)); err == nil {
			ch <- prometheus.MustNewConstMetric(descLogBytes, prometheus.GaugeValue, float64(fi.Size()), n.id)
		}
		if n.inst == nil {
			continue
		}
		up++
		commit, applied := n.inst.raft.CommitIndex(), n.inst.raft.AppliedIndex()
		lag := 0.0
		if commit > applied {
			lag = float64(commit - applied)
		}
		ch <- prometheus.MustNewConstMetric(descCommitIndex, prometheus.GaugeValue, float64(commit), n.id)
		ch <- prometheus.MustNewConstMetric(descAppliedIndex, prometheus.GaugeValue, float64(applied), n.id)
		ch <- prometheus.MustNewConstMetric(descApplyLag, prometheus.GaugeValue, lag, n.id)
	}
	ch <- prometheus.MustNewConstMetric(descNodesUp, prometheus.GaugeValue, float64(up))
}
