// Package nodeproc starts and stops `soakd node` processes for the
// components whose nodes run as processes (components.raft.mode and
// components.pbft.mode processes, components.migration.host_mode
// processes): Spawn starts one and waits until it serves HTTP, Stop ends
// it (SIGKILL for a crash), and Members picks the nodes' fixed protocol
// addresses once per run, so every restart of every node is given the
// same peer list.
//
// A node process dies with soakd (Linux's parent-death signal), so a
// resumed run starts its own.
package nodeproc
