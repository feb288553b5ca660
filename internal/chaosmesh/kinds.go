package chaosmesh

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/faults/network"
)

// defaultMemory is the memory kind's default share of the memory
// available, as internal/faults/resource has it.
const defaultMemory = "10%"

// localKinds are the kinds Chaos Mesh has no counterpart for, and why;
// their faults stay with soakd's own injectors.
var localKinds = map[string]string{
	"byzantine":   "a Byzantine replica deviates inside the PBFT protocol (equivocates, forges, replays); Chaos Mesh acts on pods and packets, not protocol messages",
	"leak":        "the leak canary leaks inside soakd's own process to prove soakd's leak alerts; it has to run there",
	"drop":        "drops single protocol messages below authentication; TCP hides Chaos Mesh's packet loss from the protocol",
	"duplicate":   "duplicates single protocol messages below authentication; TCP hides Chaos Mesh's packet duplication from the protocol",
	"reorder":     "reorders single protocol messages below authentication; TCP hides Chaos Mesh's packet reordering from the protocol",
	"blackhole":   "keeps connections open and swallows their bytes in soakd's fabric; Chaos Mesh's packet-dropping partition is what partition renders to",
	"reset":       "resets each connection on its first byte in soakd's fabric; Chaos Mesh's nearest (a rejecting partition) also refuses new connections",
	"fds":         "holds file descriptors inside soakd's process under its RLIMIT_NOFILE; Chaos Mesh cannot open descriptors in a process",
	"connections": "holds TCP connections to a node open from soakd; Chaos Mesh has no connection-exhaustion fault",
}

// LocalReason says whether a fault stays with soakd's local injectors,
// and why: its kind has no Chaos Mesh counterpart, or these parameters of
// it have none.
func LocalReason(kind string, params map[string]string) (string, bool) {
	if r, ok := localKinds[kind]; ok {
		return r, true
	}
	if _, ok := mappings[kind]; !ok {
		return "no Chaos Mesh mapping for kind " + kind, true
	}
	if kind == "memory" {
		if params["mode"] == "gomemlimit" {
			return "mode gomemlimit squeezes soakd's own Go memory limit; only soakd's process can set it", true
		}
		if _, ok := params["rate"]; ok {
			return "memory growing at a rate: Chaos Mesh's memory stressor takes its size at once", true
		}
	}
	return "", false
}

// LocalKinds lists the kinds that always stay local, with their reasons.
func LocalKinds() map[string]string {
	out := make(map[string]string, len(localKinds))
	for k, v := range localKinds {
		out[k] = v
	}
	return out
}

// mapping builds one kind's object from the fault, its metadata and where
// it lands; notes say where the object differs from the local fault.
type mapping struct {
	chaos string // the Chaos Mesh kind, for docs and tests
	build func(o Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error)
}

// mappings are the kinds rendered as Chaos Mesh objects.
var mappings = map[string]mapping{
	"partition": {v1alpha1.KindNetworkChaos, partition},
	"delay":     {v1alpha1.KindNetworkChaos, delay},
	"loss":      {v1alpha1.KindNetworkChaos, loss},
	"bandwidth": {v1alpha1.KindNetworkChaos, bandwidth},
	"crash":     {v1alpha1.KindPodChaos, crash},
	"cpu":       {v1alpha1.KindStressChaos, cpu},
	"memory":    {v1alpha1.KindStressChaos, memory},
	"disk":      {v1alpha1.KindIOChaos, disk},
}

// ChaosKind is the Chaos Mesh kind a soakd fault kind renders to ("": it
// stays local).
func ChaosKind(kind string) string {
	if _, local := localKinds[kind]; local {
		return ""
	}
	return mappings[kind].chaos
}

// durationPtr is a spec's duration; none for a fault whose duration is
// not known (the revert ends it).
func durationPtr(d time.Duration) *string {
	if d <= 0 {
		return nil
	}
	s := d.String()
	return &s
}

// tcDuration formats d as Chaos Mesh's latency pattern wants it: a number
// and one unit (1500ms, not 1.5s or 1m30s).
func tcDuration(d time.Duration) string {
	if d == 0 {
		return "0ms"
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

func netChaos(meta metav1.ObjectMeta, sel selection, p faults.Planned, action v1alpha1.NetworkChaosAction, dir v1alpha1.Direction) (*v1alpha1.NetworkChaos, error) {
	if sel.peers == nil {
		return nil, fmt.Errorf("target %q: a network fault needs a component's nodes", p.Target)
	}
	return &v1alpha1.NetworkChaos{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindNetworkChaos},
		ObjectMeta: meta,
		Spec: v1alpha1.NetworkChaosSpec{PodSelector: sel.pods, Action: action, Duration: durationPtr(p.Duration),
			Direction: dir, Target: sel.peers.DeepCopy()},
	}, nil
}

// partition cuts the target's links to its peers: isolate and split both
// ways, oneway out (the target's packets to its peers) or in.
func partition(_ Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	mode, dir := "isolate", v1alpha1.Both
	if m, ok := p.Params["mode"]; ok {
		mode = m
	}
	var notes []string
	switch mode {
	case "isolate":
	case "split":
		if sel.pods.Mode != v1alpha1.AllMode {
			notes = append(notes, "split of a role target cuts the chosen pods off from every pod of the component: the other side is not known before the run")
		}
	case "oneway":
		dir = v1alpha1.To
		switch d := p.Params["direction"]; d {
		case "", "out":
		case "in":
			dir = v1alpha1.From
		default:
			return nil, nil, faults.BadParam("direction", "want out or in, got %q", d)
		}
		notes = append(notes, "oneway drops packets one way, so TCP connections over the link stall both ways")
	default:
		return nil, nil, faults.BadParam("mode", "want isolate, split or oneway, got %q", mode)
	}
	if _, ok := p.Params["direction"]; ok && mode != "oneway" {
		return nil, nil, faults.BadParam("direction", "applies to mode oneway only")
	}
	nc, err := netChaos(meta, sel, p, v1alpha1.PartitionAction, dir)
	if err != nil {
		return nil, nil, err
	}
	nc.Spec.PartitionBehavior = v1alpha1.DropPartitionBehavior
	return nc, notes, nil
}

// delay holds what the target sends to its peers for latency ± jitter.
func delay(_ Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	latency, jitter := network.DefaultLatency, network.DefaultJitter
	if s, ok := p.Params["latency"]; ok {
		d, err := config.ParseDuration(s)
		if err != nil {
			return nil, nil, faults.BadParam("latency", "%v", err)
		}
		latency, jitter = d.Std(), 0
	}
	if s, ok := p.Params["jitter"]; ok {
		d, err := config.ParseDuration(s)
		if err != nil {
			return nil, nil, faults.BadParam("jitter", "%v", err)
		}
		jitter = d.Std()
	}
	if latency <= 0 || jitter < 0 || jitter > latency {
		return nil, nil, faults.BadParam("latency", "want latency > 0 and jitter in [0, latency], got %v ± %v", latency, jitter)
	}
	nc, err := netChaos(meta, sel, p, v1alpha1.DelayAction, v1alpha1.To)
	if err != nil {
		return nil, nil, err
	}
	nc.Spec.Delay = &v1alpha1.DelaySpec{Latency: tcDuration(latency), Jitter: tcDuration(jitter)}
	return nc, nil, nil
}

// loss drops a share of the packets on the target's links, both ways.
func loss(_ Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	prob := network.DefaultProbability
	if s, ok := p.Params["probability"]; ok {
		v, err := network.ParseProbability(s)
		if err != nil {
			return nil, nil, faults.BadParam("probability", "%v", err)
		}
		prob = v
	}
	nc, err := netChaos(meta, sel, p, v1alpha1.LossAction, v1alpha1.Both)
	if err != nil {
		return nil, nil, err
	}
	nc.Spec.Loss = &v1alpha1.LossSpec{Loss: strconv.FormatFloat(prob*100, 'f', -1, 64)}
	return nc, []string{"loses packets, where soakd's fabric silences whole connections: TCP retransmits what Chaos Mesh drops"}, nil
}

// bandwidth caps each direction of the target's links with a token
// bucket: rate in bytes/s, a burst of 10 ms of it (at least 10000 bytes),
// a queue of one second of it (at least 64 KiB).
func bandwidth(_ Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	s, ok := p.Params["rate"]
	if !ok {
		s = network.DefaultRate
	}
	r, err := config.ParseRate(s)
	if err != nil {
		return nil, nil, faults.BadParam("rate", "%v", err)
	}
	bps := math.Round(r.PerSecond())
	if bps < 1 || bps > math.MaxUint32 {
		return nil, nil, faults.BadParam("rate", "want 1 byte/s to 4GiB/s, got %q", s)
	}
	nc, err := netChaos(meta, sel, p, v1alpha1.BandwidthAction, v1alpha1.Both)
	if err != nil {
		return nil, nil, err
	}
	nc.Spec.Bandwidth = &v1alpha1.BandwidthSpec{Rate: strconv.FormatUint(uint64(bps), 10) + "bps", // tc's bps: bytes per second
		Buffer: uint32(max(bps/100, 10000)), Limit: uint32(max(bps, 64<<10))}
	return nc, nil, nil
}

// crash kills the target's pods; see CrashPodKill.
func crash(o Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	if sel.self {
		return nil, nil, errors.New("target self: crash aims at a component's nodes")
	}
	var notes []string
	if o.CrashAction == CrashPodKill {
		notes = append(notes, "pod-kill is one-shot: the StatefulSet restarts the pod from its volume at once, not at the end of the planned duration")
	}
	return &v1alpha1.PodChaos{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindPodChaos},
		ObjectMeta: meta,
		Spec: v1alpha1.PodChaosSpec{ContainerSelector: v1alpha1.ContainerSelector{PodSelector: sel.pods},
			Action: v1alpha1.PodChaosAction(o.CrashAction), Duration: durationPtr(p.Duration)},
	}, notes, nil
}

func stress(meta metav1.ObjectMeta, sel selection, p faults.Planned, s *v1alpha1.Stressors) *v1alpha1.StressChaos {
	return &v1alpha1.StressChaos{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindStressChaos},
		ObjectMeta: meta,
		Spec: v1alpha1.StressChaosSpec{ContainerSelector: v1alpha1.ContainerSelector{PodSelector: sel.pods, ContainerNames: []string{Container}},
			Stressors: s, Duration: durationPtr(p.Duration)},
	}
}

// cpu burns cores at load percent in the target's container.
func cpu(_ Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	cores, load := 1, 100
	if s, ok := p.Params["cores"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 8192 {
			return nil, nil, faults.BadParam("cores", "want a whole number in 1..8192, got %q", s)
		}
		cores = n
	}
	if s, ok := p.Params["load"]; ok {
		v, err := config.ParsePercent(s)
		if err != nil || v.Fraction() <= 0 || v.Fraction() > 1 {
			return nil, nil, faults.BadParam("load", "want a share in (0%%, 100%%], got %q", s)
		}
		load = max(1, int(math.Round(v.Fraction()*100)))
	}
	return stress(meta, sel, p, &v1alpha1.Stressors{CPUStressor: &v1alpha1.CPUStressor{
		Stressor: v1alpha1.Stressor{Workers: cores}, Load: &load}}), nil, nil
}

// memory holds bytes (a size, or a share of the memory available) in the
// target's container.
func memory(_ Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	s, ok := p.Params["bytes"]
	if !ok {
		s = defaultMemory
	}
	var size string
	if strings.HasSuffix(strings.TrimSpace(s), "%") {
		v, err := config.ParsePercent(s)
		pct := math.Round(v.Fraction() * 100)
		if err != nil || pct < 1 || pct > 90 {
			return nil, nil, faults.BadParam("bytes", "want a share of 1%% to 90%%, got %q", s)
		}
		size = strconv.Itoa(int(pct)) + "%"
	} else {
		b, err := config.ParseByteSize(s)
		if err != nil || b <= 0 {
			return nil, nil, faults.BadParam("bytes", "want a size (512MiB) or a share (20%%), got %q", s)
		}
		size = strconv.FormatInt(b.Bytes(), 10) + "B"
	}
	return stress(meta, sel, p, &v1alpha1.Stressors{MemoryStressor: &v1alpha1.MemoryStressor{
			Stressor: v1alpha1.Stressor{Workers: 1}, Size: size}}),
		[]string{"faults.resource.memory_floor is not enforced in the pod: its memory limit bounds the stressor"}, nil
}

// disk fails the target's writes as a full volume would (mode balloon) or
// slows them by IOLatency (mode io), on its data volume.
func disk(o Options, meta metav1.ObjectMeta, sel selection, p faults.Planned) (client.Object, []string, error) {
	mode := p.Params["mode"]
	if mode == "" {
		mode = "balloon"
	}
	spec := v1alpha1.IOChaosSpec{ContainerSelector: v1alpha1.ContainerSelector{PodSelector: sel.pods, ContainerNames: []string{Container}},
		VolumePath: o.DataPath, Path: path.Join(o.DataPath, "**/*"), Percent: 100, Duration: durationPtr(p.Duration)}
	var note string
	switch mode {
	case "balloon":
		spec.Action, spec.Errno = v1alpha1.IoFaults, ENOSPC
		spec.Methods = []v1alpha1.IoMethod{v1alpha1.Write, v1alpha1.Fsync, v1alpha1.Create}
		note = "every write, fsync and create on the data volume fails with ENOSPC: Chaos Mesh cannot leave free or max_fill bytes as a balloon does"
	case "io":
		spec.Action, spec.Delay = v1alpha1.IoLatency, tcDuration(IOLatency)
		spec.Methods = []v1alpha1.IoMethod{v1alpha1.Write, v1alpha1.Fsync}
		note = "every write and fsync on the data volume takes " + tcDuration(IOLatency) + " longer, in place of a writer competing for the disk"
	default:
		return nil, nil, faults.BadParam("mode", "want balloon or io, got %q", mode)
	}
	return &v1alpha1.IOChaos{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindIOChaos},
		ObjectMeta: meta,
		Spec:       spec,
	}, []string{note}, nil
}
