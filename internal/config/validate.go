package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names the config refers to. Other packages register against these, and a
// test there should check that every name here has an implementation. The
// fault kinds are not listed: they are what this soakd is built with, and a
// Checker from their registry validates them.
var (
	// LeakSignals is every signal the leak checker samples.
	LeakSignals = []string{"heap_live_bytes", "goroutines", "open_fds", "rss_bytes", "threads"}
	// RaftOps and PBFTOps are the operations a load mix may weight.
	RaftOps = []string{"put", "get", "cas"}
	PBFTOps = []string{"put", "get", "cas"}
	// Compressions is every migration page compression.
	// auto chooses one per migration from the link's bandwidth.
	Compressions = []string{"none", "s2", "lz4", "zstd", "auto"}
	// TargetComponents is what a fault target "<component>/<selector>" may
	// name; self is soakd's own process.
	TargetComponents = []string{"raft", "pbft", "migration", "self"}

	clusterComponents = []string{"raft", "pbft", "migration"}
)

// Bounds that are policy rather than user choice.
const (
	MinRaftNodes          = 3 // fewer cannot lose a node and keep quorum
	MaxRaftNodes          = 7
	MaxPBFTReplicas       = 31 // all-to-all messages grow as n²
	MaxMigrationStreams   = 64
	MaxMigrationHosts     = 64
	MaxMigrationGuests    = 1024
	MinCheckpointInterval = Duration(100 * time.Millisecond)
	MaxCheckpointInterval = Duration(10 * time.Minute)
	MinGuestMemory        = ByteSize(1 << 20)
	MinSnapshotBytes      = ByteSize(1 << 20)
)

// Checker adds checks that need to know what this soakd is built with (the
// fault kinds' registry, for one): it reports problems at field paths, as
// Validate does.
type Checker interface {
	CheckConfig(c *Config, report func(path, msg string))
}

// Validate checks c against every rule in DESIGN.md §3, then runs checks,
// and returns all problems as Errors, in field order (the checks' after the
// schema's), or nil. Settings of a disabled component, and its load, are
// not checked: they will not be used.
func (c *Config) Validate(checks ...Checker) error {
	v := &validator{}
	c.validateRun(v)
	c.validateComponents(v)
	c.validateLoad(v)
	c.validateFaults(v)
	c.validateLeakCheck(v)
	c.validateProfiling(v)
	v.url("alerting.alertmanager_url", c.Alerting.AlertmanagerURL)
	v.url("alerting.webhook_url", c.Alerting.WebhookURL)
	if e := c.Telemetry.OTLPEndpoint; e != "" {
		if strings.Contains(e, "://") {
			v.url("telemetry.otlp_endpoint", e)
		} else if msg := hostPort(e, 1); msg != "" {
			v.add("telemetry.otlp_endpoint", "must be host:port or an http(s) URL: %s", msg)
		}
	}
	if r := c.Telemetry.TraceRatio; !(r >= 0 && r <= 1) {
		v.add("telemetry.trace_ratio", "must be in [0, 1]")
	}
	for _, ch := range checks {
		ch.CheckConfig(c, func(path, msg string) { v.problems.add(path, msg) })
	}
	return v.err()
}

type validator struct{ problems }

func (v *validator) add(path, format string, args ...any) {
	v.problems.add(path, fmt.Sprintf(format, args...))
}

// positive checks a duration is > 0.
func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be > 0")
	}
}

// atLeast checks an integer setting's lower bound.
func (v *validator) atLeast(path string, n, min int) {
	if n < min {
		v.add(path, "must be >= %d", min)
	}
}

func (v *validator) oneOf(path, s string, allowed []string) {
	if !slices.Contains(allowed, s) {
		v.add(path, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
	}
}

// url checks an optional http(s) URL.
func (v *validator) url(path, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		v.add(path, "must be an http(s) URL with a host, got %q", s)
	}
}

// hostPort returns what is wrong with a host:port address, or "".
func hostPort(s string, minPort int) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("cannot parse %q as host:port", s)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Sprintf("invalid host %q", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < minPort || p > 65535 {
		return fmt.Sprintf("port must be a number in %d-65535, got %q", minPort, port)
	}
	return ""
}

func (c *Config) validateRun(v *validator) {
	r := c.Run
	v.positive("run.duration", r.Duration)
	if r.Warmup < 0 {
		v.add("run.warmup", "must be >= 0")
	} else if r.Duration > 0 && r.Warmup >= r.Duration {
		v.add("run.warmup", "must be < run.duration (%s)", r.Duration)
	}
	if r.CheckpointInterval < MinCheckpointInterval || r.CheckpointInterval > MaxCheckpointInterval {
		v.add("run.checkpoint_interval", "must be between %s and %s", MinCheckpointInterval, MaxCheckpointInterval)
	}
	v.positive("run.shutdown_timeout", r.ShutdownTimeout)
	if msg := hostPort(c.Listen, 0); msg != "" {
		v.add("listen", "%s", msg)
	}
}

// validateNodeMode checks a component's mode and, with mode remote, its
// nodes' addresses: one per node, by id node-1..node-n.
func validateNodeMode(v *validator, path string, enabled bool, n int, mode string, addrs map[string]string) {
	switch mode {
	case "", ModeInProcess, ModeProcesses:
		if len(addrs) > 0 {
			v.add(path+".addresses", "only with mode %s (mode is %q)", ModeRemote, mode)
		}
	case ModeRemote:
		if enabled && len(addrs) != n {
			v.add(path+".addresses", "mode remote needs one address per node: %d nodes, %d addresses", n, len(addrs))
		}
		for _, id := range sortedKeys(addrs) {
			if i, err := strconv.Atoi(strings.TrimPrefix(id, "node-")); err != nil || !strings.HasPrefix(id, "node-") || i < 1 || i > n {
				v.add(field(path+".addresses", id), "unknown node (node-1 to node-%d)", n)
			} else if msg := hostPort(addrs[id], 1); msg != "" {
				v.add(field(path+".addresses", id), "%s", msg)
			}
		}
	default:
		v.add(path+".mode", "must be %s, %s or %s, got %q", ModeInProcess, ModeProcesses, ModeRemote, mode)
	}
}

func (c *Config) validateComponents(v *validator) {
	if r := c.Components.Raft; r.Enabled && (r.Nodes < MinRaftNodes || r.Nodes > MaxRaftNodes) {
		v.add("components.raft.nodes", "must be between %d and %d", MinRaftNodes, MaxRaftNodes)
	}
	validateNodeMode(v, "components.raft", c.Components.Raft.Enabled, c.Components.Raft.Nodes, c.Components.Raft.Mode, c.Components.Raft.Addresses)
	validateNodeMode(v, "components.pbft", c.Components.PBFT.Enabled, c.Components.PBFT.Replicas, c.Components.PBFT.Mode, c.Components.PBFT.Addresses)
	if p := c.Components.PBFT; p.Enabled {
		const path = "components.pbft.replicas"
		switch n := p.Replicas; {
		case n < 4:
			v.add(path, "must be >= 4 (3f+1 with f >= 1)")
		case n > MaxPBFTReplicas:
			v.add(path, "must be <= %d", MaxPBFTReplicas)
		case (n-1)%3 != 0:
			v.add(path, "must be 3f+1 (4, 7, 10, ...)")
		}
		v.positive("components.pbft.liveness.commit", p.Liveness.Commit)
		v.positive("components.pbft.liveness.drain", p.Liveness.Drain)
	}
	if m := c.Components.Migration; m.Enabled {
		const p = "components.migration."
		if m.GuestMemory < MinGuestMemory {
			v.add(p+"guest_memory", "must be >= %s", MinGuestMemory)
		}
		if r := float64(m.DirtyRate); !(r >= 0) || math.IsInf(r, 0) {
			v.add(p+"dirty_rate", "must be >= 0 and finite")
		}
		if m.Streams < 1 || m.Streams > MaxMigrationStreams {
			v.add(p+"streams", "must be between 1 and %d", MaxMigrationStreams)
		}
		v.oneOf(p+"compression", m.Compression, Compressions)
		if m.Hosts < 2 || m.Hosts > MaxMigrationHosts {
			v.add(p+"hosts", "must be between 2 and %d (a migration needs a destination)", MaxMigrationHosts)
		}
		if m.Guests < 1 || m.Guests > MaxMigrationGuests {
			v.add(p+"guests", "must be between 1 and %d", MaxMigrationGuests)
		}
		if m.GuestImage == "" {
			if sum := m.Content.Zero + m.Content.Text + m.Content.Random; m.Content.Zero < 0 || m.Content.Text < 0 ||
				m.Content.Random < 0 || math.Abs(float64(sum)-1) > 1e-9 {
				v.add(p+"content", "zero, text and random must be >= 0 and sum to 100%%")
			}
		}
		if h := m.HotSet.Fraction(); !(h > 0 && h <= 1) {
			v.add(p+"hot_set", "must be in (0%%, 100%%]")
		}
		v.oneOf(p+"dirty_pattern", m.DirtyPattern, []string{"sequential", "random", "once"})
		if m.XBZRLECache < 0 {
			v.add(p+"xbzrle_cache", "must be >= 0")
		}
		v.positive(p+"downtime_limit", m.DowntimeLimit)
		if r := float64(m.DirtyLimit); !(r >= 0) || math.IsInf(r, 0) {
			v.add(p+"dirty_limit", "must be >= 0 and finite")
		}
		v.positive(p+"progress_timeout", m.ProgressTimeout)
		v.positive(p+"completion_timeout_per_gib", m.CompletionTimeout)
		v.oneOf(p+"on_timeout", m.OnTimeout, []string{"cancel", "force"})
		c.validateOwnership(v, p+"ownership", m.Ownership)
		v.oneOf(p+"mode", m.Mode, []string{"datacenter", "internet"})
		if m.HostMode != "" {
			v.oneOf(p+"host_mode", m.HostMode, []string{ModeInProcess, ModeProcesses})
		}
		if m.Mode == "internet" {
			if r := float64(m.Internet.Bandwidth); !(r > 0) || math.IsInf(r, 0) {
				v.add(p+"internet.bandwidth", "must be > 0 and finite")
			}
			if m.Internet.RTT < 0 || m.Internet.RTT.Std() > 10*time.Second {
				v.add(p+"internet.rtt", "must be between 0 and 10s")
			}
		}
		c.validatePlacement(v, p+"placement.", m)
	}
}

// OwnershipStores are the components that can hold migration owner
// records: key-value components with put, get and cas built before
// migration.
var OwnershipStores = []string{"raft"}

func (c *Config) validateOwnership(v *validator, p, store string) {
	if store == "none" {
		return
	}
	v.oneOf(p, store, append([]string{"none"}, OwnershipStores...))
	if slices.Contains(OwnershipStores, store) && !slices.Contains(c.Components.EnabledComponents(), store) {
		v.add(p, "names %s, which is not enabled (enable it or set ownership: none)", store)
	}
}

func (c *Config) validatePlacement(v *validator, p string, m MigrationComponent) {
	pl := m.Placement
	if pl.HostMemory < 0 {
		v.add(p+"host_memory", "must be >= 0")
	}
	for _, w := range []struct {
		name string
		w    float64
	}{{"balance", pl.Balance}, {"link_cost", pl.LinkCost}, {"affinity_weight", pl.AffinityWeight}} {
		if !(w.w >= 0) || math.IsInf(w.w, 0) {
			v.add(p+w.name, "must be >= 0 and finite")
		}
	}
	for _, rule := range []struct {
		key    string
		groups [][]string
	}{{"affinity", pl.Affinity}, {"anti_affinity", pl.AntiAffinity}} {
		key := rule.key
		for i, g := range rule.groups {
			if len(g) < 2 {
				v.add(index(p+key, i), "a group needs at least two guests")
			}
			for j, id := range g {
				n, err := strconv.Atoi(strings.TrimPrefix(id, "guest-"))
				if !strings.HasPrefix(id, "guest-") || err != nil || n < 0 || n >= m.Guests {
					v.add(index(index(p+key, i), j), "unknown guest %q (guest-0 to guest-%d)", id, m.Guests-1)
				}
			}
		}
	}
}

func (c *Config) validateLoad(v *validator) {
	if c.Components.Raft.Enabled {
		validateRateLoad(v, "load.raft", c.Load.Raft, RaftOps)
	}
	if c.Components.PBFT.Enabled {
		validateRateLoad(v, "load.pbft", c.Load.PBFT, PBFTOps)
	}
	if c.Components.Migration.Enabled {
		v.positive("load.migration.interval", c.Load.Migration.Interval)
		v.atLeast("load.migration.max_in_flight", c.Load.Migration.MaxInFlight, 1)
	}
}

func validateRateLoad(v *validator, path string, l RateLoad, ops []string) {
	if !(l.Rate > 0) || math.IsInf(l.Rate, 0) {
		v.add(path+".rate", "must be > 0")
	}
	sum, weightsOK := 0.0, true
	for _, op := range sortedKeys(l.Mix) {
		p := field(path+".mix", op)
		if !slices.Contains(ops, op) {
			v.add(p, "unknown op (want %s)", orList(ops))
			weightsOK = false
			continue
		}
		w := l.Mix[op]
		if !(w >= 0) || math.IsInf(w, 0) {
			v.add(p, "must be >= 0")
			weightsOK = false
			continue
		}
		sum += w
	}
	if weightsOK && !(sum > 0) {
		v.add(path+".mix", "weights must sum to > 0")
	}
	v.atLeast(path+".keys", l.Keys, 1)
	v.oneOf(path+".arrivals", l.Arrivals, []string{"poisson", "uniform"})
	v.oneOf(path+".key_dist", l.KeyDist, []string{"uniform", "zipf"})
	if a := l.Diurnal.Amplitude; !(a >= 0 && a < 1) {
		v.add(path+".diurnal.amplitude", "must be in [0%%, 100%%)")
	}
	if l.RampUp < 0 {
		v.add(path+".ramp_up", "must be >= 0")
	}
	if l.MaxInFlight < 1 || l.MaxInFlight > MaxInFlight {
		v.add(path+".max_in_flight", "must be in 1..%d", MaxInFlight)
	}
}

// MaxInFlight bounds load.*.max_in_flight: each in-flight op is a worker.
const MaxInFlight = 65536

func (c *Config) validateFaults(v *validator) {
	f := c.Faults
	v.oneOf("faults.backend", f.Backend, []string{"local", "chaosmesh"})
	if r := f.Random; r != nil {
		const p = "faults.random."
		v.positive(p+"mean_interval", r.MeanInterval)
		v.positive(p+"duration.min", r.Duration.Min)
		if r.Duration.Max < r.Duration.Min {
			v.add(p+"duration.max", "must be >= duration.min (%s)", r.Duration.Min)
		}
		v.atLeast(p+"max_concurrent", r.MaxConcurrent, 1)
		if len(r.Kinds) == 0 {
			v.add(p+"kinds", "must list at least one kind")
		}
		for i, k := range r.Kinds {
			if k == "" {
				v.add(index(p+"kinds", i), "empty kind")
			}
		}
	}
	for i, t := range f.Timeline {
		c.validateTimedFault(v, index("faults.timeline", i), t)
	}
	for _, comp := range sortedKeys(f.BlastRadius) {
		c.validateBlastRadius(v, field("faults.blast_radius", comp), comp, f.BlastRadius[comp])
	}
	rb, p := f.Resource, "faults.resource."
	for _, b := range []struct {
		name string
		v    ByteSize
	}{{"memory_floor", rb.MemoryFloor}, {"max_memory", rb.MaxMemory}, {"disk_floor", rb.DiskFloor}, {"max_fill", rb.MaxFill}} {
		if b.v < 0 {
			v.add(p+b.name, "must not be negative, got %s", b.v)
		}
	}
	v.atLeast(p+"min_fds_left", rb.MinFDsLeft, MinFDsLeft)
	v.atLeast(p+"max_fds", rb.MaxFDs, 0)
	v.atLeast(p+"max_connections", rb.MaxConnections, 0)
	c.validateChaosMesh(v)
}

// ChaosMeshCrashActions are the PodChaos actions a crash may become:
// pod-kill deletes the pod at once, as a power cut would; pod-failure keeps
// it down for the fault's duration. internal/chaosmesh renders each.
var ChaosMeshCrashActions = []string{"pod-kill", "pod-failure"}

// MaxChaosMeshWait bounds faults.chaosmesh.wait: the fault runner injects
// one fault at a time, so a wait holds back every fault due meanwhile.
const MaxChaosMeshWait = Duration(5 * time.Minute)

// validateChaosMesh checks the chaosmesh backend's settings whatever the
// backend: soakd chaos render uses them too. The rules are Kubernetes'
// (this package does not link its code: internal/chaosmesh's test checks
// they agree).
func (c *Config) validateChaosMesh(v *validator) {
	cm, p := c.Faults.ChaosMesh, "faults.chaosmesh."
	if !isDNSLabel(cm.Namespace) {
		v.add(p+"namespace", "must be a Kubernetes namespace: lower case letters, digits and '-', at most 63, got %q", cm.Namespace)
	}
	// The name is the soakd.io/run label Cleanup deletes by, so it is kept
	// as written: one sanitized or truncated could match another run's.
	if cm.Name != "" && !isDNSLabel(cm.Name) {
		v.add(p+"name", "must be lower case letters, digits and '-', at most 63 (it labels the run's objects), got %q", cm.Name)
	}
	if cm.Wait > MaxChaosMeshWait {
		v.add(p+"wait", "must be <= %s (faults due meanwhile wait for it)", MaxChaosMeshWait)
	}
	v.oneOf(p+"crash_action", cm.CrashAction, ChaosMeshCrashActions)
}

// isDNSLabel reports whether s is an RFC 1123 label, as a Kubernetes
// namespace must be.
func isDNSLabel(s string) bool {
	return len(s) <= 63 && dnsLabel.MatchString(s)
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// MinFDsLeft is the fewest descriptors an fds fault may leave soakd: its
// journal, listener and metrics need a few to report what the fault did.
const MinFDsLeft = 16

// validateTimedFault checks one timeline entry. An entry at or after
// run.duration is not an error: it never fires in this run, which lets a
// shorter run (soakd run --duration 30m) reuse a long run's config.
func (c *Config) validateTimedFault(v *validator, path string, t TimedFault) {
	v.positive(path+".duration", t.Duration)
	if t.Kind == "" {
		v.add(path+".kind", "required")
	}
	if t.Target != "" && t.Target != "self" { // self: soakd's own process and machine
		comp, sel, ok := strings.Cut(t.Target, "/")
		switch {
		case !ok || comp == "" || sel == "":
			v.add(path+".target", "must be <component>/<selector>, got %q", t.Target)
		case !slices.Contains(TargetComponents, comp):
			v.add(path+".target", "unknown component %q (want %s)", comp, orList(TargetComponents))
		case !c.enabled(comp):
			v.add(path+".target", "component %q is disabled", comp)
		}
	}

}

// enabled reports whether a fault target component is running.
func (c *Config) enabled(comp string) bool {
	switch comp {
	case "raft":
		return c.Components.Raft.Enabled
	case "pbft":
		return c.Components.PBFT.Enabled
	case "migration":
		return c.Components.Migration.Enabled
	}
	return true
}

// validateBlastRadius keeps faults from taking out more of a cluster than the
// soak is meant to survive: a stalled cluster tests nothing but the alert.
func (c *Config) validateBlastRadius(v *validator, path, comp string, n int) {
	if !slices.Contains(clusterComponents, comp) {
		v.add(path, "unknown component (want %s)", orList(clusterComponents))
		return
	}
	if n < 0 {
		v.add(path, "must be >= 0")
		return
	}
	switch comp {
	case "raft":
		nodes := c.Components.Raft.Nodes
		if !c.Components.Raft.Enabled || nodes < 1 {
			return
		}
		if quorum := nodes/2 + 1; n >= nodes {
			v.add(path, "must be < %d (raft nodes): would allow losing every node", nodes)
		} else if n >= quorum {
			v.add(path, "must be < %d (raft quorum): would allow losing quorum", quorum)
		}
	case "pbft":
		replicas := c.Components.PBFT.Replicas
		if !c.Components.PBFT.Enabled || replicas < 1 {
			return
		}
		if f := (replicas - 1) / 3; n >= replicas {
			v.add(path, "must be < %d (pbft replicas): would allow losing every replica", replicas)
		} else if n > f && !c.Faults.AllowBeyondF {
			v.add(path, "must be <= %d (f for %d replicas): more faulty replicas void PBFT's guarantees (faults.allow_beyond_f: true to test that the checkers catch it)", f, replicas)
		}
	}
}

func (c *Config) validateLeakCheck(v *validator) {
	l := c.LeakCheck
	const p = "leakcheck."
	v.positive(p+"interval", l.Interval)
	if l.Window <= 0 {
		v.add(p+"window", "must be > 0")
	} else if l.Interval > 0 && l.Window/2 < l.Interval {
		// Window/2 < Interval is Window < 2*Interval without overflow.
		if l.Interval <= math.MaxInt64/2 {
			v.add(p+"window", "must be >= 2*interval (%s)", 2*l.Interval)
		} else {
			v.add(p+"window", "must be >= 2*interval")
		}
	}
	confOK := true // the confidences are in range: the budget can be judged
	for i, w := range l.Windows {
		path := index(p+"windows", i)
		if w.Window <= 0 || (l.Interval > 0 && w.Window/2 < l.Interval) {
			v.add(path+".window", "must be >= 2*interval")
		}
		if w.Factor != 0 && !(w.Factor >= 1) || math.IsInf(w.Factor, 0) {
			v.add(path+".factor", "must be >= 1")
		}
		for _, sig := range slices.Sorted(maps.Keys(w.Factors)) {
			switch f := w.Factors[sig]; {
			case !slices.Contains(LeakSignals, sig):
				v.add(path+".factors."+sig, "unknown leak signal (want %s)", orList(LeakSignals))
			case !(f >= 1) || math.IsInf(f, 0):
				v.add(path+".factors."+sig, "must be >= 1")
			}
		}
		if w.Confidence != 0 && !(w.Confidence > 0.5 && w.Confidence < 1) {
			v.add(path+".confidence", "must be in (0.5, 1)")
			confOK = false
		}
	}
	if l.Confidence != 0 && !(l.Confidence > 0.5 && l.Confidence < 1) {
		v.add(p+"confidence", "must be in (0.5, 1)")
		confOK = false
	}
	if b := l.FalseAlarmBudget; !(b.Alarms >= 0) || math.IsInf(b.Alarms, 0) {
		v.add(p+"false_alarm_budget.alarms", "must be >= 0 (0: no budget)")
	} else if b.Alarms > 0 && b.Per <= 0 {
		v.add(p+"false_alarm_budget.per", "must be > 0")
	} else if _, _, err := l.Confidences(); err != nil && confOK {
		var es Errors
		if errors.As(err, &es) {
			for _, e := range es {
				v.add(e.Path, "%s", e.Msg)
			}
		}
	}
	v.atLeast(p+"for", l.For, 1)
	for _, sig := range sortedKeys(l.Thresholds) {
		path := field(p+"thresholds", sig)
		if !slices.Contains(LeakSignals, sig) {
			v.add(path, "unknown leak signal (want %s)", orList(LeakSignals))
			continue
		}
		if r := float64(l.Thresholds[sig]); !(r > 0) || math.IsInf(r, 0) {
			v.add(path, "must be > 0")
		}
	}
	v.atLeast(p+"evidence.keep", l.Evidence.Keep, 1)
	names := map[string]bool{}
	for i, t := range l.Targets {
		path := index(p+"targets", i)
		switch {
		case strings.TrimSpace(t.Name) == "" || strings.Contains(t.Name, "/"):
			v.add(path+".name", "must be a name without '/', got %q", t.Name)
		case names[t.Name]:
			v.add(path+".name", "%q is listed twice", t.Name)
		}
		names[t.Name] = true
		if t.PprofURL == "" {
			v.add(path+".pprof_url", "must be set (the base of the process's /debug/pprof/ handlers)")
		} else if !strings.HasSuffix(t.PprofURL, "/") {
			v.add(path+".pprof_url", "must end in '/' (the base of /debug/pprof/), got %q", t.PprofURL)
		}
		v.url(path+".pprof_url", t.PprofURL)
		v.url(path+".metrics_url", t.MetricsURL)
	}
}

func (c *Config) validateProfiling(v *validator) {
	p := c.Profiling
	v.url("profiling.pyroscope.server_address", p.Pyroscope.ServerAddress)
	if strings.TrimSpace(p.Pyroscope.ApplicationName) == "" {
		v.add("profiling.pyroscope.application_name", "must not be empty")
	}
	v.positive("profiling.snapshots.interval", p.Snapshots.Interval)
	if sc := p.StageCPU; sc.Interval > 0 && !(sc.Duration > 0 && sc.Duration < sc.Interval) {
		v.add("profiling.stage_cpu.duration", "must be > 0 and < profiling.stage_cpu.interval (%s)", sc.Interval)
	}
	if p.Snapshots.MaxBytes < MinSnapshotBytes {
		v.add("profiling.snapshots.max_bytes", "must be >= %s", MinSnapshotBytes)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// orList renders "a, b or c".
func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
