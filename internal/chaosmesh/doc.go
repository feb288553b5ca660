// Package chaosmesh is the chaosmesh fault backend: it turns soakd's
// planned faults into Chaos Mesh objects built with chaos-mesh/api's types
// (Render, Build), checks each with Chaos Mesh's own admission defaulting
// and validation, reporting bad fields by JSON path (Validate), writes them
// as YAML for review or GitOps (WriteYAML, WriteDir), and at run time
// creates and deletes them through a controller-runtime client (Backend,
// whose injectors are faults.Injectors).
//
// Kinds map as follows; every object carries the fault's duration:
//
//	partition, delay, loss, bandwidth  NetworkChaos on the target's links to its component's other pods
//	crash                              PodChaos pod-kill (or pod-failure, Options.CrashAction)
//	cpu, memory                        StressChaos in the target's soakd container
//	disk                               IOChaos on the data volume: ENOSPC (balloon) or IOLatency (io)
//
// The rest stay with soakd's local injectors, each for the reason
// LocalReason gives: byzantine, leak, drop, duplicate, reorder, blackhole,
// reset, fds, connections, and memory in mode gomemlimit or with a rate.
//
// Targets become pod selectors in Options.Namespace. Node node-N (host-N)
// of a component is pod soakd-<component>-N of its StatefulSet, whose
// ordinals start at 1 (deploy/kubernetes); "self" is the harness pod
// (app.kubernetes.io/component: harness). A role known only at run time
// (leader, follower, primary, ...) becomes mode one over the component's
// pods, minority and majority a fixed number of them, and a
// soakd.io/notes annotation says so. At run time the runner hands the
// backend resolved targets (raft/node-2), which select exact pods.
//
// RunBackend is faults.backend chaosmesh in soakd run: it cleans up what an
// earlier incarnation of the run left, then routes the kinds through a
// Backend, each object named after its planned fault (faults.InjectionOf)
// with the fault's remaining time, and cleans up again after the runner.
//
// This package and deploy/kubernetes's test are the only ones that import
// Kubernetes or Chaos Mesh code, so the rest of soakd builds without it;
// only cmd/soakd's chaosmesh build (-tags chaosmesh, make build-k8s)
// imports it, for `soakd chaos render` and the backend. It imports config, faults
// (and faults/network for its probability syntax) and fsutil; nothing in
// internal/ imports it.
package chaosmesh
