package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/raft"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/run"
)

// raftNodes is a cluster of `soakd node` processes on loopback.
type raftNodes struct {
	t     *testing.T
	dirs  map[string]string
	peers []string // --peer flags
	procs map[string]*proc
}

func startRaftNodes(t *testing.T, n int) *raftNodes {
	t.Helper()
	c := &raftNodes{t: t, dirs: map[string]string{}, procs: map[string]*proc{}}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the node's Raft address
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("node-%d", i)
		c.peers = append(c.peers, "--peer", id+"="+ln.Addr().String())
		c.dirs[id] = filepath.Join(t.TempDir(), id)
		_ = ln.Close()
	}
	for id := range c.dirs {
		c.start(id)
	}
	return c
}

func (c *raftNodes) start(id string) {
	c.t.Helper()
	args := append([]string{"node", "--component", "raft", "--id", id, "--state-dir", c.dirs[id]}, c.peers...)
	c.procs[id] = startProc(c.t, nil, args...)
}

func (c *raftNodes) status(id string) (raft.NodeStatus, error) {
	var st raft.NodeStatus
	resp, err := http.Get("http://" + c.procs[id].addr + "/raft/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leader waits for a node, other than not, that says it leads.
func (c *raftNodes) leader(not string) string {
	c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for id := range c.procs {
			if id == not {
				continue
			}
			if st, err := c.status(id); err == nil && st.State == "Leader" {
				return id
			}
		}
	}
	c.t.Fatal("no leader elected within 30s")
	return ""
}

// do sends op to node id, following a follower's redirect once.
func (c *raftNodes) do(id string, req raft.OpRequest) raft.OpReply {
	c.t.Helper()
	for range 2 {
		body, _ := json.Marshal(req)
		resp, err := http.Post("http://"+c.procs[id].addr+"/raft/v1/op", "application/json", bytes.NewReader(body))
		if err != nil {
			c.t.Fatal(err)
		}
		var rep raft.OpReply
		err = json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		if rep.Outcome == components.OutcomeFailed && rep.Leader != "" && rep.Leader != id {
			id = rep.Leader
			continue
		}
		return rep
	}
	c.t.Fatalf("op %+v: redirected twice", req)
	return raft.OpReply{}
}

// TestRaftNodeProcesses runs three `soakd node` processes: they elect a
// leader, replicate puts, survive a SIGKILL of the leader (a new one is
// elected and takes writes), and the killed node restarts from its own
// disk on the same state dir, catches up and serves every acknowledged
// value. Each process serves /metrics, /healthz and /debug/pprof/.
func TestRaftNodeProcesses(t *testing.T) {
	c := startRaftNodes(t, 3)
	lead := c.leader("")
	acked := map[string]string{}
	put := func(via string, i int) {
		k, v := fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d", i)
		if rep := c.do(via, raft.OpRequest{Op: "put", Key: k, Value: []byte(v)}); rep.Outcome == components.OutcomeOK {
			acked[k] = v
		} else {
			t.Fatalf("put %s=%s via %s: %+v", k, v, via, rep)
		}
	}
	for i := range 40 {
		put(lead, i)
	}
	follower := "node-1"
	if follower == lead {
		follower = "node-2"
	}
	if rep := c.do(follower, raft.OpRequest{Op: "get", Key: "k1"}); rep.Outcome != components.OutcomeOK || string(rep.Value) != acked["k1"] {
		t.Fatalf("get via a follower (redirected): %+v, want %q", rep, acked["k1"])
	}
	for _, path := range []string{"/metrics", "/healthz", "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get("http://" + c.procs[lead].addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	before, err := c.status(lead)
	if err != nil {
		t.Fatal(err)
	}

	// SIGKILL the leader: no shutdown, only what it fsynced survives.
	if err := c.procs[lead].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := c.procs[lead].wait(10 * time.Second); code != -1 {
		t.Logf("killed node exit code %d", code)
	}
	next := c.leader(lead)
	t.Logf("killed leader %s at applied index %d; %s took over", lead, before.AppliedIndex, next)
	for i := 40; i < 80; i++ {
		put(next, i)
	}

	// Restart it on its own state dir: it recovers from disk and catches up.
	c.start(lead)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.status(lead)
		lst, lerr := c.status(next)
		if err == nil && lerr == nil && st.Leader != "" && st.AppliedIndex >= lst.AppliedIndex && st.AppliedIndex > before.AppliedIndex {
			t.Logf("restarted %s: %s, leader %s, applied %d", lead, st.State, st.Leader, st.AppliedIndex)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted %s did not catch up: %+v (%v); leader %+v (%v)\n%s", lead, st, err, lst, lerr, c.procs[lead].stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for k, v := range acked {
		if rep := c.do(lead, raft.OpRequest{Op: "get", Key: k}); rep.Outcome != components.OutcomeOK || string(rep.Value) != v {
			t.Fatalf("after the restart, get %s: %+v, want %q", k, rep, v)
		}
	}
	// A state dir keeps its node's address: another one is refused.
	bad := startBadNode(t, c, lead)
	if !strings.Contains(bad, "keeps its address") {
		t.Fatalf("a node restarted on another address: %s", bad)
	}
	for id, p := range c.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(15 * time.Second); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM\n%s", id, code, p.stderr)
		}
	}
}

// startBadNode runs id's state dir with a changed Raft address and
// returns what soakd said.
func startBadNode(t *testing.T, c *raftNodes, id string) string {
	t.Helper()
	peers := append([]string(nil), c.peers...)
	for i := range peers {
		if strings.HasPrefix(peers[i], id+"=") {
			peers[i] = id + "=127.0.0.1:1"
		}
	}
	_, stderr, code := soakd(t, append([]string{"node", "--component", "raft", "--id", id, "--state-dir", c.dirs[id]}, peers...)...)
	if code == 0 {
		t.Fatal("soakd node on a changed address succeeded")
	}
	return stderr
}

// childNodes lists the `soakd node` processes whose parent is pid.
func childNodes(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); bytes.Contains(cmdline, []byte("node\x00")) {
			out = append(out, child)
		}
	}
	return out
}

// TestRaftProcessesModeUnderLoad runs `soakd run` with components.raft.mode
// processes: the three nodes are child processes under load; a crash of
// the leader and then of a follower is a real SIGKILL of the node's
// process, restarted from its disk when the fault ends; a partition of the
// leader reaches the processes' links through the fabric's proxies (a new
// term is elected); linearizability holds over the whole history; the
// children end with soakd.
func TestRaftProcessesModeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("40 s of real time")
	}
	cfg := testConfig(t, `
load:
  raft: {rate: 200, ramp_up: 0s}
faults:
  timeline:
    - {at: 6s, duration: 6s, kind: crash, target: raft/leader}
    - {at: 17s, duration: 8s, kind: partition, target: raft/leader}
    - {at: 30s, duration: 6s, kind: crash, target: raft/follower}
`)
	cfg = strings.Replace(string(mustRead(t, cfg)), "raft: {enabled: false}", "raft: {enabled: true, nodes: 3, mode: processes}", 1)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", writeTemp(t, cfg), "--state-dir", state)
	pid := d.cmd.Process.Pid
	if n := len(childNodes(t, pid)); n != 3 {
		t.Fatalf("%d node processes under soakd, want 3", n)
	}
	first := childNodes(t, pid)
	time.Sleep(16 * time.Second)
	before := d.scrape("soakd_raft_term")["soakd_raft_term"]
	time.Sleep(10 * time.Second)
	during := d.scrape("soakd_raft_term")["soakd_raft_term"]
	t.Logf("raft term before the partition %v, during it %v", before, during)
	if during <= before {
		t.Errorf("a partition of the leader's process elected no new leader: term %v -> %v", before, during)
	}
	time.Sleep(14 * time.Second)
	m := d.scrape("soakd_")
	okPuts := m[`soakd_ops_total{component="raft",op="put",outcome="ok"}`]
	lin := m[`soakd_checks_total{checker="linearizability",component="raft",result="ok"}`]
	illegal := m[`soakd_checks_total{checker="linearizability",component="raft",result="illegal"}`]
	t.Logf("ok puts %.0f, linearizability windows ok %.0f, illegal %.0f", okPuts, lin, illegal)
	if okPuts < 1000 || lin == 0 || illegal != 0 {
		t.Errorf("ok puts %.0f, linearizability ok %.0f illegal %.0f\n%s", okPuts, lin, illegal, d.stderr)
	}
	if v := m[`soakd_invariant_violations_total{component="raft",invariant="linearizability"}`]; v != 0 {
		t.Errorf("%v linearizability violations", v)
	}
	now := childNodes(t, pid)
	if len(now) != 3 {
		t.Errorf("%d node processes after the crashes, want 3", len(now))
	}
	replaced := 0
	for _, p := range first {
		if !slices.Contains(now, p) {
			replaced++
		}
	}
	// Two crashes replace one or two processes (the follower picked for
	// the second may be the leader restarted after the first); the journal
	// below counts the SIGKILLs.
	if replaced == 0 {
		t.Errorf("no node process was replaced by the crashes: %v -> %v", first, now)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	for _, p := range now {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(p))); err == nil {
			if stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "stat")); !bytes.Contains(stat, []byte(") Z")) {
				t.Errorf("node process %d outlived soakd", p)
			}
		}
	}
	evs, err := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	crashed, restarted := 0, 0
	for _, e := range evs {
		if e.Type == "fault_injected" && e.Fields["kind"] == "partition" {
			t.Logf("partition of %v verified: %v", e.Fields["target"], e.Fields["verified"])
		}
		switch e.Type {
		case "raft_node_crashed":
			if e.Fields["signal"] == "SIGKILL" {
				crashed++
			}
		case "raft_node_restarted":
			restarted++
		}
	}
	if crashed != 2 || restarted != 2 {
		t.Errorf("journal: %d SIGKILL crashes and %d restarts, want 2 and 2", crashed, restarted)
	}
}

// A leak in one node process (the test-only NodeLeakEnv) fires an alert
// that names that node, with evidence from that node's own profiles; the
// other nodes raise none.
func TestNodeLeakEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of real time")
	}
	cfg := testConfig(t, `
load:
  raft: {rate: 100, ramp_up: 0s}
leakcheck:
  interval: 2s
  window: 1m
  windows: []
  confidence: 0.99
  false_alarm_budget: {alarms: 0}
  for: 3
  thresholds: {goroutines: 10/min}
`)
	cfg = strings.Replace(string(mustRead(t, cfg)), "raft: {enabled: false}", "raft: {enabled: true, nodes: 3, mode: processes}", 1)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, []string{NodeLeakEnv + "=node-2:resource=goroutines,rate=300/min"},
		"--config", writeTemp(t, cfg), "--state-dir", state)
	var got leakcheck.FiringAlert
	deadline := time.Now().Add(150 * time.Second)
	for got.Node == "" && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		for _, a := range d.alerts() {
			if a.Signal == leakcheck.SignalGoroutines && a.Node != "" {
				got = a
			}
		}
	}
	if got.Node != "raft/node-2" {
		t.Fatalf("node goroutine alert %+v, want one on raft/node-2\n%s", got, d.stderr)
	}
	t.Logf("%s on %s after the node's start; evidence %s", got.Name, got.Node, got.Evidence)
	var sum leakcheck.Summary
	if err := json.Unmarshal(mustRead(t, filepath.Join(got.Evidence, "summary.json")), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Node != "raft/node-2" || len(sum.TopStacks) == 0 || !strings.Contains(sum.TopStacks[0].Key, "faults/leak.") {
		t.Errorf("evidence: node %q, top stacks %+v: want node-2's profiles, the leak's goroutines on top", sum.Node, sum.TopStacks)
	}
	m := d.scrape("soakd_node_leak_")
	if v := m[`soakd_node_leak_firing{component="raft",node="node-2",signal="goroutines"}`]; v != 1 {
		t.Errorf("soakd_node_leak_firing of node-2 = %v, want 1", v)
	}
	for _, n := range []string{"node-1", "node-3"} {
		if v := m[`soakd_node_leak_firing{component="raft",node="`+n+`",signal="goroutines"}`]; v != 0 {
			t.Errorf("soakd_node_leak_firing of %s = %v: it leaks nothing", n, v)
		}
		if v := m[`soakd_node_leak_samples_total{component="raft",node="`+n+`",signal="goroutines"}`]; v < 10 {
			t.Errorf("%s sampled %v times", n, v)
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
}

// TestRaftRemoteMode drives node processes soakd did not start
// (components.raft.mode remote, as on Kubernetes): load and linearizability
// as in the other modes, the leak checker samples each node over its pprof
// and /metrics, and the faults soakd cannot inject there (a crash, a
// partition of links that are not its) fail with the reason, not silently.
// The nodes outlive soakd.
func TestRaftRemoteMode(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s of real time")
	}
	nodes := startRaftNodes(t, 3)
	nodes.leader("")
	addrs := ""
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("node-%d", i)
		addrs += fmt.Sprintf("\n      %s: %s", id, nodes.procs[id].addr)
	}
	cfg := testConfig(t, `
load:
  raft: {rate: 100, ramp_up: 0s}
leakcheck:
  interval: 1s
  window: 1m
  targets: [{name: other, pprof_url: "http://%s/debug/pprof/"}]
faults:
  timeline:
    - {at: 2s, duration: 3s, kind: crash, target: raft/node-1}
    - {at: 4s, duration: 3s, kind: partition, target: raft/leader}
`)
	cfg = strings.Replace(string(mustRead(t, cfg)), "raft: {enabled: false}",
		"raft:\n    enabled: true\n    nodes: 3\n    mode: remote\n    addresses:"+addrs, 1)
	// A process no component runs, soaked as leakcheck.targets: here a
	// node's pprof again, without its /metrics (heap and goroutines only).
	cfg = fmt.Sprintf(cfg, nodes.procs["node-3"].addr)
	state := filepath.Join(t.TempDir(), "s")
	d := startDaemon(t, nil, "--config", writeTemp(t, cfg), "--state-dir", state)
	time.Sleep(15 * time.Second)
	m := d.scrape("soakd_")
	okPuts := m[`soakd_ops_total{component="raft",op="put",outcome="ok"}`]
	lin := m[`soakd_checks_total{checker="linearizability",component="raft",result="ok"}`]
	t.Logf("ok puts %.0f, linearizability windows ok %.0f", okPuts, lin)
	if okPuts < 500 || lin == 0 || m[`soakd_checks_total{checker="linearizability",component="raft",result="illegal"}`] != 0 {
		t.Errorf("ok puts %.0f, linearizability ok %.0f\n%s", okPuts, lin, d.stderr)
	}
	for i := 1; i <= 3; i++ {
		for _, sig := range []string{"goroutines", "heap_live_bytes", "open_fds", "rss_bytes"} {
			key := fmt.Sprintf(`soakd_node_leak_samples_total{component="raft",node="node-%d",signal="%s"}`, i, sig)
			if m[key] < 5 {
				t.Errorf("%s = %v: the remote node's %s is not sampled", key, m[key], sig)
			}
		}
	}
	if v := m[`soakd_node_leak_samples_total{component="",node="other",signal="goroutines"}`]; v < 5 {
		t.Errorf("leakcheck.targets entry sampled %v times", v)
	}
	if v, ok := m[`soakd_node_leak_samples_total{component="",node="other",signal="open_fds"}`]; ok && v > 0 {
		t.Errorf("descriptors of a target without metrics_url sampled %v times: from what?", v)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.stderr)
	}
	evs, err := run.ReadEvents(filepath.Join(state, "journal.jsonl"), 0, 0, "fault_failed")
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]string{}
	for _, e := range evs {
		failed[fmt.Sprint(e.Fields["kind"])] = fmt.Sprint(e.Fields["error"])
	}
	if !strings.Contains(failed["crash"], "remote") || !strings.Contains(failed["partition"], "chaosmesh") {
		t.Errorf("fault_failed: %v: want the crash and the partition refused, saying why", failed)
	}
	for id := range nodes.procs {
		if _, err := nodes.status(id); err != nil {
			t.Errorf("node %s did not outlive soakd: %v", id, err)
		}
	}
}
