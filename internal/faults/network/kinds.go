package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// Resolver turns a fault target ("raft/node-2", "raft/leader",
// "raft/minority") into fabric node names at injection time: nodes are the
// target, rest the target's peers (the other side of a split). Names are
// those the components' Dialer sees (qualified when DialerFor is used).
type Resolver func(target string) (nodes []string, rest []string, err error)

// FromComponents is the Resolver for the fault runner: the runner hands a
// kind the target it resolved ("raft/node-1,node-3"), and an unresolved one
// ("raft/leader") works too. Each comma-separated part is resolved by the
// component's TargetResolver (node ids resolve to themselves); rest is the
// component's other nodes ("all" minus nodes). With qualify, names become
// component/node, matching a component dialling through DialerFor.
func FromComponents(resolvers map[string]components.TargetResolver, qualify bool) Resolver {
	return func(target string) ([]string, []string, error) {
		comp, sel, ok := strings.Cut(target, "/")
		res, known := resolvers[comp]
		if !ok || !known || sel == "" {
			return nil, nil, fmt.Errorf("target %q names no component with nodes", target)
		}
		var nodes []string
		for _, part := range strings.Split(sel, ",") {
			got, err := res.Resolve(strings.TrimSpace(part), 0)
			if err != nil {
				return nil, nil, err
			}
			for _, n := range got {
				if !slices.Contains(nodes, n) {
					nodes = append(nodes, n)
				}
			}
		}
		all, err := res.Resolve("all", 0)
		if err != nil {
			return nil, nil, err
		}
		var rest []string
		for _, n := range all {
			if !slices.Contains(nodes, n) {
				rest = append(rest, n)
			}
		}
		if qualify {
			for i := range nodes {
				nodes[i] = comp + "/" + nodes[i]
			}
			for i := range rest {
				rest[i] = comp + "/" + rest[i]
			}
		}
		return nodes, rest, nil
	}
}

// Default parameters, used when a fault names none (the random schedule
// lists kinds only).
const (
	DefaultLatency     = 100 * time.Millisecond
	DefaultJitter      = 10 * time.Millisecond
	DefaultRate        = "1MiB/s"
	DefaultProbability = 0.1
	// verifyCut is how long a verification probe waits to see a cut link
	// refuse it or a blackholed link swallow it.
	verifyCut = 300 * time.Millisecond
	// verifySlack is the extra time a verification probe allows.
	verifySlack = time.Second
)

// NewKinds returns the fabric's fault kinds: partition, delay, bandwidth,
// blackhole, reset and loss. Non-partition kinds apply to every link to or
// from the target's nodes.
func NewKinds(f *Fabric, resolve Resolver) []faults.Kind {
	mk := func(name string, keys []string, parse func(map[string]string) (plan, error)) faults.Kind {
		return &kind{name: name, keys: keys, parse: parse, f: f, resolve: resolve}
	}
	return []faults.Kind{
		mk("partition", []string{"mode", "direction"}, parsePartition),
		mk("delay", []string{"latency", "jitter"}, parseDelay),
		mk("bandwidth", []string{"rate"}, parseBandwidth),
		mk("blackhole", nil, func(map[string]string) (plan, error) { return plan{blackhole: true}, nil }),
		mk("reset", nil, func(map[string]string) (plan, error) { return plan{reset: true}, nil }),
		mk("loss", []string{"probability"}, parseLoss),
	}
}

// plan is a validated parameter set.
type plan struct {
	mode, direction string // partition
	latency, jitter time.Duration
	rate            float64
	probability     float64
	blackhole       bool
	reset           bool
}

type kind struct {
	name    string
	keys    []string
	parse   func(map[string]string) (plan, error)
	f       *Fabric
	resolve Resolver
}

func (k *kind) Name() string { return k.name }

// TakesNodesOut: a partitioned or blackholed node is out of service, and
// counts against faults.blast_radius; a slow or lossy link does not.
func (k *kind) TakesNodesOut() bool { return k.name == "partition" || k.name == "blackhole" }

func (k *kind) Validate(params map[string]string) error {
	_, err := k.plan(params)
	return err
}

func (k *kind) plan(params map[string]string) (plan, error) {
	var unknown []string
	for key := range params {
		if !slices.Contains(k.keys, key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		want := "none"
		if len(k.keys) > 0 {
			want = strings.Join(k.keys, ", ")
		}
		return plan{}, fmt.Errorf("%s: unknown parameter %s (known: %s)", k.name, strings.Join(unknown, ", "), want)
	}
	return k.parse(params)
}

func (k *kind) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	p, err := k.plan(params)
	if err != nil {
		return nil, err
	}
	if k.resolve == nil {
		return nil, fmt.Errorf("%s: no target resolver", k.name)
	}
	nodes, rest, err := k.resolve(target)
	if err != nil {
		return nil, fmt.Errorf("%s: target %q: %w", k.name, target, err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: target %q resolved to no nodes", k.name, target)
	}
	sel, probe, err := k.selection(p, nodes, rest)
	if err != nil {
		return nil, fmt.Errorf("%s: target %q: %w", k.name, target, err)
	}
	f := k.f
	var revert faults.Revert
	switch {
	case k.name == "partition":
		revert, err = f.Cut(sel)
	case k.name == "delay":
		revert, err = f.Delay(sel, p.latency, p.jitter)
	case k.name == "bandwidth":
		revert, err = f.Bandwidth(sel, p.rate)
	case p.blackhole:
		revert, err = f.Blackhole(sel)
	case p.reset:
		revert, err = f.Reset(sel)
	case k.name == "loss":
		revert, err = f.Loss(sel, p.probability)
	default:
		err = fmt.Errorf("%s: no such network kind", k.name)
	}
	if err != nil {
		return nil, err
	}
	measured, verr := k.verify(ctx, p, probe)
	if verr != nil {
		rerr := revert(ctx)
		return nil, errors.Join(fmt.Errorf("%s on %s: injected but not in effect: %w", k.name, sel, verr), rerr)
	}
	f.log.Info("network fault verified", "kind", k.name, "target", target, "nodes", nodes,
		"links", sel.String(), "probe", probe.String(), "verified", measured)
	return revert, nil
}

// selection picks the links a plan applies to and the link to probe.
func (k *kind) selection(p plan, nodes, rest []string) (Selector, Link, error) {
	other := "soakd-probe"
	if len(rest) > 0 {
		other = rest[0]
	}
	if k.name != "partition" || p.mode == "isolate" {
		return Isolate(nodes...), Link{nodes[0], other}, nil
	}
	if len(rest) == 0 {
		return Selector{}, Link{}, fmt.Errorf("partition mode %s needs nodes on the other side", p.mode)
	}
	if p.mode == "split" {
		return Split(nodes, rest), Link{nodes[0], rest[0]}, nil
	}
	var sels []Selector
	for _, n := range nodes {
		for _, r := range rest {
			if p.direction == "in" {
				sels = append(sels, OneWay(r, n))
			} else {
				sels = append(sels, OneWay(n, r))
			}
		}
	}
	if p.direction == "in" {
		return Union(sels...), Link{rest[0], nodes[0]}, nil
	}
	return Union(sels...), Link{nodes[0], rest[0]}, nil
}

// verify probes link l after injection and says what it measured. An effect
// another fault masks on l (a cut, blackhole, loss or reset from an
// overlapping injection) leaves the check to that fault.
func (k *kind) verify(ctx context.Context, p plan, l Link) (string, error) {
	f := k.f
	e := f.rules.Load().effect(l.From, l.To)
	masked := e.blackhole || e.reset || len(e.loss) > 0 || (e.cut && k.name != "partition")
	switch {
	case k.name == "loss":
		return "not verified at run time (statistical; see tests)", nil
	case masked && k.name != "partition":
		return "not verified: another fault on the link masks it", nil
	}
	switch k.name {
	case "partition":
		pctx, cancel := context.WithTimeout(ctx, verifyCut)
		defer cancel()
		if _, err := f.Probe(pctx, l, 1); err == nil {
			return "", fmt.Errorf("probe over %s still connected", l)
		}
		return "probe could not connect", nil
	case "blackhole":
		pctx, cancel := context.WithTimeout(ctx, verifyCut)
		defer cancel()
		if rtt, err := f.Probe(pctx, l, 1); err == nil {
			return "", fmt.Errorf("probe over %s echoed in %v", l, rtt)
		}
		return fmt.Sprintf("no echo within %v", verifyCut), nil
	case "reset":
		pctx, cancel := context.WithTimeout(ctx, verifySlack)
		defer cancel()
		_, err := f.Probe(pctx, l, 1)
		if err == nil {
			return "", fmt.Errorf("probe over %s echoed", l)
		}
		if pctx.Err() != nil {
			return "", fmt.Errorf("probe over %s was not reset: %w", l, err)
		}
		return "probe reset: " + err.Error(), nil
	case "delay":
		pctx, cancel := context.WithTimeout(ctx, e.latency+e.jitter+verifySlack)
		defer cancel()
		rtt, err := f.Probe(pctx, l, 1)
		if err != nil {
			return "", err
		}
		if low := p.latency - p.jitter; rtt < low {
			return "", fmt.Errorf("probe round trip %v < %v", rtt, low)
		}
		return fmt.Sprintf("probe round trip %v", rtt.Round(100*time.Microsecond)), nil
	case "bandwidth":
		n := int(min(max(p.rate/4, 256), MaxProbePayload))
		want := time.Duration(float64(n) / p.rate * float64(time.Second))
		pctx, cancel := context.WithTimeout(ctx, 2*want+e.latency+e.jitter+verifySlack)
		defer cancel()
		rtt, err := f.Probe(pctx, l, n)
		if err != nil {
			return "", err
		}
		got := float64(n) / rtt.Seconds()
		if got > 1.5*p.rate {
			return "", fmt.Errorf("probe moved %d bytes at %.0f B/s, cap %.0f B/s", n, got, p.rate)
		}
		return fmt.Sprintf("probe moved %d bytes at %.0f B/s", n, got), nil
	}
	return "", nil
}

func parsePartition(params map[string]string) (plan, error) {
	p := plan{mode: "isolate", direction: "out"}
	if m, ok := params["mode"]; ok {
		p.mode = m
	}
	switch p.mode {
	case "isolate", "split", "oneway":
	default:
		return plan{}, fmt.Errorf("partition: mode: want isolate, split or oneway, got %q", p.mode)
	}
	if d, ok := params["direction"]; ok {
		if p.mode != "oneway" {
			return plan{}, fmt.Errorf("partition: direction applies to mode oneway only")
		}
		if d != "out" && d != "in" {
			return plan{}, fmt.Errorf("partition: direction: want out or in, got %q", d)
		}
		p.direction = d
	}
	return p, nil
}

func parseDelay(params map[string]string) (plan, error) {
	p := plan{latency: DefaultLatency, jitter: DefaultJitter}
	if s, ok := params["latency"]; ok {
		d, err := config.ParseDuration(s)
		if err != nil {
			return plan{}, fmt.Errorf("delay: latency: %w", err)
		}
		p.latency = d.Std()
		if _, ok := params["jitter"]; !ok {
			p.jitter = 0
		}
	}
	if s, ok := params["jitter"]; ok {
		d, err := config.ParseDuration(s)
		if err != nil {
			return plan{}, fmt.Errorf("delay: jitter: %w", err)
		}
		p.jitter = d.Std()
	}
	if p.latency <= 0 {
		return plan{}, fmt.Errorf("delay: latency must be > 0")
	}
	if p.jitter > p.latency {
		return plan{}, fmt.Errorf("delay: jitter %v must not exceed latency %v", p.jitter, p.latency)
	}
	return p, nil
}

func parseBandwidth(params map[string]string) (plan, error) {
	s, ok := params["rate"]
	if !ok {
		s = DefaultRate
	}
	r, err := config.ParseRate(s)
	if err != nil {
		return plan{}, fmt.Errorf("bandwidth: rate: %w", err)
	}
	if r.PerSecond() < 1 {
		return plan{}, fmt.Errorf("bandwidth: rate must be at least 1 byte/s, got %q", s)
	}
	return plan{rate: r.PerSecond()}, nil
}

func parseLoss(params map[string]string) (plan, error) {
	s, ok := params["probability"]
	if !ok {
		return plan{probability: DefaultProbability}, nil
	}
	v, err := ParseProbability(s)
	if err != nil {
		return plan{}, fmt.Errorf("loss: probability: %w", err)
	}
	return plan{probability: v}, nil
}

// ParseProbability reads "0.1" or "10%" as a probability in [0, 1].
func ParseProbability(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if strings.HasSuffix(t, "%") {
		t, scale = strings.TrimSpace(strings.TrimSuffix(t, "%")), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q (want e.g. 0.1 or 10%%)", s)
	}
	v /= scale
	if !(v >= 0 && v <= 1) {
		return 0, fmt.Errorf("%q is not in [0, 1] (or 0%%..100%%)", s)
	}
	return v, nil
}
