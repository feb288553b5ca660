// Package faults owns the fault contract: a kind's Spec says everything
// soakd knows about it (parameters and their checks, the roles a random
// fault aims at and how it draws parameters, whether it takes nodes out)
// and New builds its Injector, whose Inject returns its own Revert (the
// roachtest Run → Cleanup shape). The Registry of specs validates configs
// (a config.Checker), feeds the seeded random schedule (Plan) and is built
// into the Kinds the Runner injects on the run's elapsed time. It reads a
// run's journal itself to replay the faults that run injected (ReplayPlan)
// and to know which ones an earlier incarnation finished (Settled).
//
// Sub-packages are kinds: leak (the canary), network (link faults on
// internal/fabric, one file per kind), process (crash), byzantine (a PBFT
// replica deviating on the wire), message (drop, duplicate, reorder of
// single messages), resource (cpu, memory, fds, disk, connections, bounded
// by faults.resource through Spec.Bounds); builtin lists them. A kind that
// moves a leak signal on purpose names it in Spec.Disturbs. faults imports
// config, components and fabric; nothing below faults imports it.
package faults
