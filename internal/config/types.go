package config

// Config is the whole soakd configuration, DESIGN.md §3. Every field has a
// default (see Default); YAML keys are the snake_case names in the tags.
type Config struct {
	Run        Run        `yaml:"run"`
	Listen     string     `yaml:"listen"`
	StateDir   string     `yaml:"state_dir"`
	Components Components `yaml:"components"`
	Load       Workload   `yaml:"load"`
	Faults     Faults     `yaml:"faults"`
	LeakCheck  LeakCheck  `yaml:"leakcheck"`
	Profiling  Profiling  `yaml:"profiling"`
	Alerting   Alerting   `yaml:"alerting"`
	Telemetry  Telemetry  `yaml:"telemetry"`
}

// Run bounds one soak run.
type Run struct {
	Duration Duration `yaml:"duration"`
	Seed     uint64   `yaml:"seed"`
	Warmup   Duration `yaml:"warmup"`
	// CheckpointInterval is how often run state is written to disk.
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
	// ShutdownTimeout bounds the ordered shutdown after SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

type Components struct {
	Raft      RaftComponent      `yaml:"raft"`
	PBFT      PBFTComponent      `yaml:"pbft"`
	Migration MigrationComponent `yaml:"migration"`
}

// EnabledComponents names the component sections the config turns on.
// The daemon builds the registered ones and warns about the rest.
func (c *Components) EnabledComponents() []string {
	var names []string
	for _, s := range []struct {
		name string
		on   bool
	}{{"raft", c.Raft.Enabled}, {"pbft", c.PBFT.Enabled}, {"migration", c.Migration.Enabled}} {
		if s.on {
			names = append(names, s.name)
		}
	}
	return names
}

type RaftComponent struct {
	Enabled bool `yaml:"enabled"`
	Nodes   int  `yaml:"nodes"`
	// Mode is where the nodes run: inprocess (the default: inside soakd),
	// processes (each a `soakd node` child process soakd supervises) or
	// remote (`soakd node` processes soakd did not start, at Addresses).
	Mode string `yaml:"mode"`
	// Addresses are the remote nodes' HTTP addresses (host:port), by node
	// id node-1 .. node-N; only with mode remote.
	Addresses map[string]string `yaml:"addresses,omitempty"`
}

// Node modes of a component.
const (
	ModeInProcess = "inprocess"
	ModeProcesses = "processes"
	ModeRemote    = "remote"
)

type PBFTComponent struct {
	Enabled  bool `yaml:"enabled"`
	Replicas int  `yaml:"replicas"`
	// Mode is where the replicas run, as RaftComponent.Mode; with remote,
	// Addresses are their `soakd node` HTTP addresses, node-1 .. node-N.
	Mode      string            `yaml:"mode"`
	Addresses map[string]string `yaml:"addresses,omitempty"`
	// Liveness bounds, checked after every fault window closes: a commit
	// within Commit and every request pending then finished within Drain.
	Liveness PBFTLiveness `yaml:"liveness"`
}

// PBFTLiveness is the bounded-liveness check's deadlines.
type PBFTLiveness struct {
	Commit Duration `yaml:"commit"`
	Drain  Duration `yaml:"drain"`
}

type MigrationComponent struct {
	Enabled bool `yaml:"enabled"`
	// Hosts each run a listener; Guests are spread over them.
	Hosts       int      `yaml:"hosts"`
	Guests      int      `yaml:"guests"`
	GuestMemory ByteSize `yaml:"guest_memory"`
	// GuestImage, when set, is a raw image file every guest starts from
	// (its size rounds down to whole pages); otherwise Content mixes pages.
	GuestImage string     `yaml:"guest_image"`
	Content    ContentMix `yaml:"content"`
	// The dirtying workload: bytes/s over a HotSet share of the pages.
	DirtyRate    Rate    `yaml:"dirty_rate"`
	HotSet       Percent `yaml:"hot_set"`
	DirtyPattern string  `yaml:"dirty_pattern"` // sequential | random | once
	Streams      int     `yaml:"streams"`
	Compression  string  `yaml:"compression"` // none | s2 | lz4 | zstd | auto (chosen per migration)
	// XBZRLECache bounds the source's cache of sent pages for deltas (0: off).
	XBZRLECache ByteSize `yaml:"xbzrle_cache"`
	// DowntimeLimit is the predicted pause at which pre-copy switches over.
	DowntimeLimit Duration `yaml:"downtime_limit"`
	AutoConverge  bool     `yaml:"auto_converge"`
	// DirtyLimit caps the guest's dirty rate outright while it migrates (0: off).
	DirtyLimit Rate `yaml:"dirty_limit"`
	// ProgressTimeout: no round shrank the pending bytes for this long.
	// CompletionTimeout is per GiB of guest memory. OnTimeout: cancel (the
	// guest stays on its source) or force (switch over now).
	ProgressTimeout   Duration  `yaml:"progress_timeout"`
	CompletionTimeout Duration  `yaml:"completion_timeout_per_gib"`
	OnTimeout         string    `yaml:"on_timeout"`
	Placement         Placement `yaml:"placement"`
	// Mode datacenter runs migrations over the loopback as it is; internet
	// puts Internet's bandwidth cap and round-trip delay on every migration
	// link through the fabric, and compression none becomes auto.
	Mode     string       `yaml:"mode"`
	Internet InternetLink `yaml:"internet"`
	// HostMode is where the hosts run: inprocess (the default) or processes
	// (each a `soakd node --component migration` child soakd supervises,
	// with its guests' memory; a crash is a SIGKILL). Mode above is the
	// network the migrations cross.
	HostMode string `yaml:"host_mode"`
	// Ownership names the key-value component (raft) that records each
	// guest's owner, flipped by compare-and-swap at switch-over; none keeps
	// the records in the migration component's memory only.
	Ownership string `yaml:"ownership"`
}

// InternetLink is the profile of a migration link in internet mode.
type InternetLink struct {
	Bandwidth Rate     `yaml:"bandwidth"` // each direction of each host pair
	RTT       Duration `yaml:"rtt"`
}

// Placement is how a migration's destination is chosen: hosts that are up,
// have room and break no anti-affinity rule, scored by balance, link
// bandwidth and affinity.
type Placement struct {
	// HostMemory is each host's room for guest memory (0: unlimited).
	HostMemory ByteSize `yaml:"host_memory"`
	Balance    float64  `yaml:"balance"`
	LinkCost   float64  `yaml:"link_cost"`
	// AffinityWeight scores keeping an affinity group together.
	AffinityWeight float64 `yaml:"affinity_weight"`
	// Affinity and AntiAffinity are groups of guest ids ("guest-0").
	Affinity     [][]string `yaml:"affinity"`
	AntiAffinity [][]string `yaml:"anti_affinity"`
}

// ContentMix is the share of zero, text-like and random pages in a
// generated guest; the shares sum to 100%.
type ContentMix struct {
	Zero   Percent `yaml:"zero"`
	Text   Percent `yaml:"text"`
	Random Percent `yaml:"random"`
}

// Workload is the load section. It is not named Load because func Load
// (read a config file) has that name.
type Workload struct {
	Raft      RateLoad     `yaml:"raft"`
	PBFT      RateLoad     `yaml:"pbft"`
	Migration IntervalLoad `yaml:"migration"`
}

// RateLoad is an open-loop load at Rate operations per second.
type RateLoad struct {
	Rate     float64            `yaml:"rate"`
	Mix      map[string]float64 `yaml:"mix"`
	Keys     int                `yaml:"keys"`
	Arrivals string             `yaml:"arrivals"` // poisson | uniform
	KeyDist  string             `yaml:"key_dist"` // uniform | zipf
	Diurnal  Diurnal            `yaml:"diurnal"`
	// RampUp is how long the rate climbs from 10% to 100% at the start of
	// the run (on the run's elapsed time: a resume does not ramp again).
	RampUp Duration `yaml:"ramp_up"`
	// MaxInFlight caps concurrent operations; an arrival beyond it is
	// dropped and counted, never queued.
	MaxInFlight int `yaml:"max_in_flight"`
}

type Diurnal struct {
	Amplitude Percent `yaml:"amplitude"`
}

type IntervalLoad struct {
	Interval Duration `yaml:"interval"`
	// MaxInFlight caps concurrent operations (migrations); an arrival
	// beyond it is dropped and counted.
	MaxInFlight int `yaml:"max_in_flight"`
}

type Faults struct {
	Backend            string         `yaml:"backend"` // local | chaosmesh
	Random             *RandomFaults  `yaml:"random"`  // nil: only the timeline
	Timeline           []TimedFault   `yaml:"timeline"`
	BlastRadius        map[string]int `yaml:"blast_radius"`
	PauseWhenUnhealthy bool           `yaml:"pause_when_unhealthy"`
	// AllowBeyondF lets blast_radius.pbft exceed f: PBFT's guarantees are
	// then void, which is how a soak proves its checkers catch it.
	AllowBeyondF bool   `yaml:"allow_beyond_f"`
	Replay       string `yaml:"replay"`
	// Resource bounds every resource fault (cpu, memory, fds, disk,
	// connections), whatever its parameters ask.
	Resource ResourceBounds `yaml:"resource"`
	// ChaosMesh says where backend chaosmesh puts its objects; soakd chaos
	// render reads it too.
	ChaosMesh ChaosMeshFaults `yaml:"chaosmesh"`
}

// ChaosMeshFaults configures the chaosmesh fault backend.
type ChaosMeshFaults struct {
	// Namespace holds the objects and the pods they select.
	Namespace string `yaml:"namespace"`
	// Name is in the objects' names and their soakd.io/run label: the
	// backend deletes the objects of this name an earlier incarnation left,
	// so two runs in one namespace need different names. "": the run id.
	Name string `yaml:"name"`
	// Kubeconfig is the cluster's kubeconfig file; "": $KUBECONFIG,
	// ~/.kube/config, or the pod's service account.
	Kubeconfig string `yaml:"kubeconfig"`
	// Wait bounds how long an injection waits for Chaos Mesh to report the
	// fault injected (0: it does not wait).
	Wait Duration `yaml:"wait"`
	// CrashAction is a crash's PodChaos action (ChaosMeshCrashActions).
	CrashAction string `yaml:"crash_action"`
}

// ResourceBounds are the hard limits of the resource fault kinds: a fault
// asking for more is refused by check-config when its parameters are
// fixed, and clamped at injection when they depend on the machine.
type ResourceBounds struct {
	MemoryFloor    ByteSize `yaml:"memory_floor"`    // MemAvailable never falls below this
	MaxMemory      ByteSize `yaml:"max_memory"`      // most one memory fault holds
	DiskFloor      ByteSize `yaml:"disk_floor"`      // free space never falls below this
	MaxFill        ByteSize `yaml:"max_fill"`        // largest disk balloon
	MinFDsLeft     int      `yaml:"min_fds_left"`    // an fds fault leaves at least this many
	MaxFDs         int      `yaml:"max_fds"`         // most descriptors one fds fault holds
	MaxConnections int      `yaml:"max_connections"` // most connections one fault holds
}

type RandomFaults struct {
	MeanInterval  Duration      `yaml:"mean_interval"`
	Duration      DurationRange `yaml:"duration"`
	MaxConcurrent int           `yaml:"max_concurrent"`
	Kinds         []string      `yaml:"kinds"`
}

type DurationRange struct {
	Min Duration `yaml:"min"`
	Max Duration `yaml:"max"`
}

type TimedFault struct {
	At       Duration          `yaml:"at"`
	Duration Duration          `yaml:"duration"`
	Kind     string            `yaml:"kind"`
	Target   string            `yaml:"target"`
	Params   map[string]string `yaml:"params"`
}

type LeakCheck struct {
	Interval Duration `yaml:"interval"`
	Window   Duration `yaml:"window"`
	// Windows are judged beside Window, each with its own evidence bar:
	// a short one catches a fast leak early, a long one a slow leak.
	Windows []LeakWindow `yaml:"windows"`
	// Confidence of the main window's bound; 0 derives it from
	// FalseAlarmBudget, as for any window that does not set its own.
	Confidence float64 `yaml:"confidence,omitempty"`
	// FalseAlarmBudget is how many false alarms per signal the user
	// accepts over a period; see Confidences.
	FalseAlarmBudget FalseAlarmBudget `yaml:"false_alarm_budget"`
	For              int              `yaml:"for"`
	Thresholds       map[string]Rate  `yaml:"thresholds"`
	Evidence         Evidence         `yaml:"evidence"`
	// Targets are processes soaked beside soakd and its node processes,
	// with the same detectors: any Go process serving net/http/pprof.
	Targets []LeakTarget `yaml:"targets,omitempty"`
}

// LeakTarget is a process the leak checker samples over HTTP.
type LeakTarget struct {
	// Name is its label node in alerts and metrics.
	Name string `yaml:"name"`
	// PprofURL is the base of its net/http/pprof handlers, e.g.
	// http://10.0.0.7:6060/debug/pprof/ (heap and goroutine signals).
	PprofURL string `yaml:"pprof_url"`
	// MetricsURL, optional, is its Prometheus /metrics with client_golang's
	// process collector (descriptor, resident memory and thread signals).
	MetricsURL string `yaml:"metrics_url,omitempty"`
}

// LeakWindow is one extra window of the leak detector.
type LeakWindow struct {
	Window Duration `yaml:"window"`
	// Factor raises the window's bar: its slope's lower bound must exceed
	// Factor times the threshold (default 1).
	Factor float64 `yaml:"factor"`
	// Factors overrides Factor per signal: a signal whose noise has steady
	// short rises (descriptors reopened after a fault) needs a higher bar
	// on a short window than one that must be caught fast.
	Factors map[string]float64 `yaml:"factors,omitempty"`
	// Confidence of this window's bound (default: derived from
	// leakcheck.false_alarm_budget, else leakcheck.confidence).
	Confidence float64 `yaml:"confidence,omitempty"`
}

// FactorFor is the window's bar factor for signal (Factors, else Factor,
// else 1).
func (w LeakWindow) FactorFor(signal string) float64 {
	if f, ok := w.Factors[signal]; ok {
		return f
	}
	if w.Factor == 0 {
		return 1
	}
	return w.Factor
}

// FalseAlarmBudget is an expected number of false alarms per signal
// (Alarms) over a run of length Per; Alarms 0 turns the derivation off.
type FalseAlarmBudget struct {
	Alarms float64  `yaml:"alarms"`
	Per    Duration `yaml:"per"`
}

type Evidence struct {
	Keep int `yaml:"keep"`
}

type Profiling struct {
	Pyroscope Pyroscope `yaml:"pyroscope"`
	Snapshots Snapshots `yaml:"snapshots"`
	StageCPU  StageCPU  `yaml:"stage_cpu"`
}

// StageCPU is the periodic CPU profile that says what the harness costs:
// every Interval (0: never), a profile of Duration summed by stage.
type StageCPU struct {
	Interval Duration `yaml:"interval"`
	Duration Duration `yaml:"duration"`
}

type Pyroscope struct {
	ServerAddress   string `yaml:"server_address"`
	ApplicationName string `yaml:"application_name"`
}

type Snapshots struct {
	Interval Duration `yaml:"interval"`
	MaxBytes ByteSize `yaml:"max_bytes"`
}

type Alerting struct {
	AlertmanagerURL string `yaml:"alertmanager_url"`
	WebhookURL      string `yaml:"webhook_url"`
}

type Telemetry struct {
	OTLPEndpoint string  `yaml:"otlp_endpoint"`
	TraceRatio   float64 `yaml:"trace_ratio"`
}

// BlastRadius is faults.blast_radius with the defaults of components it
// leaves out: pbft at f (a Byzantine, crashed or cut-off replica counts
// against it; more than f voids PBFT's guarantees).
func (c *Config) BlastRadius() map[string]int {
	out := make(map[string]int, len(c.Faults.BlastRadius)+1)
	for k, v := range c.Faults.BlastRadius {
		out[k] = v
	}
	if _, set := out["pbft"]; !set && c.Components.PBFT.Enabled && c.Components.PBFT.Replicas >= 4 {
		out["pbft"] = (c.Components.PBFT.Replicas - 1) / 3
	}
	return out
}
