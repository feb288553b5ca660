// Package faults owns the Fault contract (a kind validates its parameters
// and Inject returns its own Revert, the roachtest Run → Cleanup shape), the
// registry of kinds, and the runner that injects the configured timeline on
// the run's elapsed time. It reads a run's journal itself to replay the
// faults that run injected (ReplayPlan) and to know which ones an earlier
// incarnation finished (Settled).
//
// Sub-packages implement kinds: leak (the canary). faults imports config;
// kinds may import components; nothing below faults imports it.
package faults
