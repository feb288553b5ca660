// Package fabric is soakd's userspace network fabric. The kernel on the
// machines soakd targets has no netem qdisc, so link faults cannot be put in
// the kernel: instead every node-to-node connection of a component is
// dialled through the components.Dialer hook, and the fabric applies the
// faults in force on that link to it.
//
// Two ways to carry a link. By default (nodes inside the soakd process) the
// connection a node dials is its own TCP socket to the destination, wrapped
// (inline.go): the rules are applied in its Read and Write, and while they
// leave a direction alone Read and Write are the socket's own, so an
// unfaulted link costs what a direct connection costs. WithProxies routes
// each link over its own TCP proxy on loopback instead (proxy.go), for nodes
// in other processes whose sockets the fabric cannot wrap (LinkAddrFor gives
// such a node the proxy's address for each peer); it costs a second
// loopback hop. Both shape through the same code (shape.go), and every
// effect below is tested both ways.
//
// A link is directed: (from, to) is "connections that node from opens to node
// to" (every component transport dials its peers, so a symmetric pair of nodes
// has two links). Each distinct (from, to, addr) is one link (and, proxied,
// one proxy), created on first dial; Close ends every connection, stops
// every proxy and waits for every goroutine.
//
// Faults are rules: a Selector (Links, Isolate, Split, OneWay, Union) and an
// effect. A rule covers the links that match it now and links created while
// it is in force. What each effect does on a stream:
//
//   - Delay: bytes sent from the dialing node are held for latency ± jitter
//     (uniform, order kept), so every request/response round trip over the
//     link takes about latency longer. Replies are not delayed a second time.
//   - Bandwidth: each direction of the link is paced to the rate, shared by
//     all of the link's connections (a link's capacity, not a per-stream cap).
//   - Blackhole: connections are accepted, nothing is delivered either way;
//     data waits (and the sender's socket buffers fill) until the fault is
//     reverted, like TCP over a network that drops every packet and later
//     heals. Bytes are never dropped from the middle of a stream: no real
//     network does that to TCP, and it would look like a Byzantine peer.
//   - Reset: open connections are reset (RST both sides) at injection, and
//     new connections are reset on their first byte (toxiproxy reset_peer
//     with timeout 0).
//   - Cut (partition): open connections are closed, and new dials do not
//     connect: like a SYN into a partition, Dial waits until the caller's
//     deadline or CutDialTimeout and fails with a timeout (or proceeds if the
//     cut heals meanwhile). Both directions of a symmetric selector are cut;
//     OneWay(a, b) cuts only the connections a opens to b.
//   - Loss: a stream has no packets to lose, so loss is modelled per
//     connection: each connection on the link is drawn once per loss rule and
//     with that probability it goes silent (a blackhole for that connection,
//     both ways) until the rule is reverted. At 100% it is a blackhole, at 0%
//     nothing; in between, a share of the connections stall, which is what a
//     lossy path does to a component that times out and redials.
//
// Verification. The network fault kinds (internal/faults/network) verify
// each injection at run time with Probe, which runs a real loopback TCP
// connection as a connection of the link, under the same rules, and echoes
// it back: partition (the probe cannot connect), delay (the
// probe's round trip rises to about latency), bandwidth (the probe's
// throughput stays under the cap), blackhole (nothing comes back), reset (the
// probe is reset). Loss is statistical and is not verified at run time; the
// tests check its rate over many connections, and check every effect against
// a real echo server through f.Dialer().
//
// Why not toxiproxy. github.com/Shopify/toxiproxy/v2 (v2.5.0, the newest
// the module proxy serves) was tried as a library and strands goroutines: when
// a client closes while the destination is still sending, the link's writer
// exits and the toxic stubs block forever on unbuffered channel sends, even
// after Proxy.Stop (about 1.5 goroutines per such connection, measured). A
// 72-hour run with crash faults would leak without bound, so the fabric has
// its own small proxy with toxiproxy's toxic semantics (latency/jitter,
// bandwidth, timeout-0 blackhole, reset_peer, toxicity as loss), where every
// goroutine selects on the connection's and the fabric's end, and adds no
// dependency. For the same reason a connection that one side has closed
// waits at most DefaultHalfCloseLinger (a minute) for the other side to
// finish before both are reset: a stuck peer that never closes would
// otherwise hold its two sockets for the rest of the run.
//
// Fast path of a proxy. While no rule shapes a direction of a connection, that
// direction is not queued at all: it is io.Copy between the proxy's two
// *net.TCPConn, which on Linux is splice(2), no copy through user space.
// Delay shapes only the dialing node's bytes, so under a delay the replies
// stay on the fast path; a loss rule whose draw spared a connection shapes
// nothing. Every rule change cancels the replaced rule set's context, and a
// context.AfterFunc on it sets the copy's source read deadline in the past.
// That fails the copy's next read from the source, never a write, and the
// copy writes all it has read before it reads again, so when it returns
// every byte it took is delivered, in order, and the direction looks at the
// new rules: if they shape it, it goes on through the shaped pipeline (read,
// queue, deliver, pace, as described above) from exactly the next byte. A
// copy that is writing when the rules change first finishes writing what it
// took, at most one slice (256 KiB), which then arrives unshaped like bytes
// already on the wire; measured here, an idle connection switches in 0.1-0.6
// ms, a saturated stream in 1-10 ms. Cut and reset close or reset a
// connection's sockets at injection whichever path it is on. When the rules
// stop shaping the direction, the shaped pipeline hands back to the fast
// path after its next read, once everything it queued is delivered (an idle
// connection goes back with its next byte). On Linux a fast direction waits
// for data without holding a splice pipe (SIOCINQ sizes each copy), so an
// idle connection costs its sockets only. Goroutines: one per direction,
// plus the writer of a shaped direction.
//
// Throughput. An unshaped stream through a proxy is as fast as a bare
// proxy of two io.Copy calls (fabric/proxy 0.9-1.1); what it costs against
// direct loopback TCP is the second loopback hop, which takes about as much
// CPU per byte as the direct connection itself. go test -run xxx -bench
// Throughput ./internal/fabric on the 2-vCPU development VM, which others
// share (figures move with their load): one stream 2.5-2.9 GB/s through the
// fabric against 3.5-4.1 GB/s direct, fabric/direct 0.70-0.76 in most runs
// and down to 0.51 when the VM was busy (the shaped pipeline alone, before
// the fast path: 0.55-0.67); 4 streams 2.5-3.2 GB/s against 5.3-6.3 GB/s,
// 0.48-0.52 (before: 0.36-0.44): both vCPUs are saturated, so the ratio is
// the CPU cost of one loopback hop against two.
//
// Network time is real time on real sockets, so the fabric takes no clock.
// It imports components (and golang.org/x/sys/unix on Linux) only: the fault
// kinds build on it, not the other way round, so components and the daemon
// can hold a fabric without pulling in the fault machinery.
package fabric
