package chaosmesh

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// Labels and annotations soakd puts on its objects and expects on its pods.
const (
	LabelName      = "app.kubernetes.io/name"      // soakd, on every pod of deploy/kubernetes
	LabelComponent = "app.kubernetes.io/component" // harness, or the component's name
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelFaultID   = "soakd.io/fault-id"
	LabelKind      = "soakd.io/fault-kind"
	LabelRun       = "soakd.io/run"
	// LabelPodName is the label the StatefulSet controller gives each pod.
	LabelPodName = "statefulset.kubernetes.io/pod-name"

	AnnotationAt       = "soakd.io/at"       // planned offset into the run
	AnnotationDuration = "soakd.io/duration" // planned duration
	AnnotationTarget   = "soakd.io/target"   // the plan's target selector
	AnnotationParams   = "soakd.io/params"   // the plan's parameters, k=v sorted
	AnnotationNotes    = "soakd.io/notes"    // where the object differs from the local fault

	// HarnessComponent is the LabelComponent value of soakd's own pod, which
	// target "self" selects.
	HarnessComponent = "harness"
	// Container is the container name of soakd's pods (harness and nodes).
	Container = "soakd"
	// DefaultNamespace holds the objects and the pods of deploy/kubernetes.
	DefaultNamespace = "soakd"
	// DefaultDataPath is where soakd's pods mount their data volume.
	DefaultDataPath = "/var/lib/soakd"
	// IOLatency is what a disk fault in mode io adds to each write and
	// fsync on the target's data volume.
	IOLatency = 10 * time.Millisecond
	// ENOSPC is the errno a disk balloon's writes fail with.
	ENOSPC = 28
)

// Crash actions: PodChaos pod-kill deletes the pod at once (no grace
// period), as a power cut would, and the StatefulSet recreates it
// straight away; pod-failure keeps the pod down for the fault's duration
// but stops it through the kubelet.
const (
	CrashPodKill    = string(v1alpha1.PodKillAction)
	CrashPodFailure = string(v1alpha1.PodFailureAction)
)

// Options say where the objects go and which pods stand for soakd's nodes.
type Options struct {
	// Namespace holds the objects and the pods they select (default soakd).
	Namespace string
	// Name is the run id or config name in object names,
	// soakd-<name>-<fault-id>, and in the soakd.io/run label ("": none).
	Name string
	// Replicas is each component's number of nodes: its StatefulSet's pods.
	// A target naming a component not here is an error.
	Replicas map[string]int
	// Minority is how many nodes a component's minority target takes (the
	// majority is the rest); default (n-1)/2.
	Minority map[string]int
	// DataPath is where the pods mount their data volume, an IOChaos's
	// volumePath (default /var/lib/soakd).
	DataPath string
	// CrashAction is the PodChaos action of a crash: pod-kill (default) or
	// pod-failure.
	CrashAction string
}

// OptionsFor returns the options of the config's enabled components: node
// counts as deploy/kubernetes runs them, a PBFT minority of f.
func OptionsFor(cfg *config.Config, namespace, name string) Options {
	o := Options{Namespace: namespace, Name: name, Replicas: map[string]int{}, Minority: map[string]int{}}
	c := cfg.Components
	if c.Raft.Enabled {
		o.Replicas["raft"] = c.Raft.Nodes
	}
	if c.PBFT.Enabled {
		o.Replicas["pbft"] = c.PBFT.Replicas
		o.Minority["pbft"] = (c.PBFT.Replicas - 1) / 3 // f: a PBFT minority is what it tolerates
	}
	if c.Migration.Enabled {
		o.Replicas["migration"] = c.Migration.Hosts
	}
	return o
}

// Check reports options no object can be built with.
func (o Options) Check() error {
	_, err := o.withDefaults()
	return err
}

func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.DataPath == "" {
		o.DataPath = DefaultDataPath
	}
	if !path.IsAbs(o.DataPath) {
		return o, fmt.Errorf("data path %q: want an absolute path", o.DataPath)
	}
	o.DataPath = path.Clean(o.DataPath)
	if o.CrashAction == "" {
		o.CrashAction = CrashPodKill
	}
	if o.CrashAction != CrashPodKill && o.CrashAction != CrashPodFailure {
		return o, fmt.Errorf("crash action %q: want %s or %s", o.CrashAction, CrashPodKill, CrashPodFailure)
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return o, fmt.Errorf("namespace %q: want lower case letters, digits and '-', at most 63", o.Namespace)
	}
	if o.Name != "" && sanitize(o.Name) == "" {
		return o, fmt.Errorf("name %q: no letter or digit to name objects with", o.Name)
	}
	return o, nil
}

// Rendered is one planned fault as a Chaos Mesh object.
type Rendered struct {
	Fault  faults.Planned
	Object client.Object // *v1alpha1.NetworkChaos, PodChaos, StressChaos or IOChaos
}

// Kept is a planned fault that stays with soakd's local injectors, and why.
type Kept struct {
	Fault  faults.Planned
	Reason string
}

// Rendering is a whole plan: the objects, in plan order, and the faults
// that stay local.
type Rendering struct {
	Objects []Rendered
	Local   []Kept
}

// Render turns a plan into Chaos Mesh objects, each defaulted and
// validated by Chaos Mesh's own code; faults Chaos Mesh has no counterpart
// for are listed in Local. A fault that cannot be rendered (bad
// parameters, an unknown component) fails the whole rendering, naming it.
func Render(plan []faults.Planned, opts Options) (*Rendering, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Rendering{}
	var errs []error
	for _, p := range plan {
		if reason, local := LocalReason(p.Kind, p.Params); local {
			r.Local = append(r.Local, Kept{Fault: p, Reason: reason})
			continue
		}
		obj, err := o.build(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Objects = append(r.Objects, Rendered{Fault: p, Object: obj})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Build renders one fault: its object, defaulted and validated. A fault
// that stays local is an error saying why.
func Build(p faults.Planned, opts Options) (client.Object, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if reason, local := LocalReason(p.Kind, p.Params); local {
		return nil, fmt.Errorf("%s: %s stays local: %s", p.ID, p.Kind, reason)
	}
	return o.build(p)
}

func (o Options) build(p faults.Planned) (client.Object, error) {
	fail := func(err error) error {
		return fmt.Errorf("%s (%s %s): %w", p.ID, p.Kind, orDash(p.Target), err)
	}
	m, ok := mappings[p.Kind]
	if !ok {
		return nil, fail(errors.New("no Chaos Mesh mapping"))
	}
	sel, err := o.selectTarget(p.Target)
	if err != nil {
		return nil, fail(err)
	}
	meta := o.objectMeta(p)
	obj, notes, err := m.build(o, meta, sel, p)
	if err != nil {
		return nil, fail(err)
	}
	if notes = append(sel.notes, notes...); len(notes) > 0 {
		a := obj.GetAnnotations()
		a[AnnotationNotes] = strings.Join(notes, "; ")
		obj.SetAnnotations(a)
	}
	if err := Validate(obj); err != nil {
		return nil, fail(err)
	}
	return obj, nil
}

// ObjectName is the name of a fault's object: soakd-<name>-<fault-id>,
// lower-cased, with anything a Kubernetes name cannot hold turned into
// dashes.
func ObjectName(name, faultID string) string {
	n := "soakd-"
	if s := sanitize(name); s != "" {
		n += s + "-"
	}
	n += sanitize(faultID)
	if len(n) > 253 {
		n = strings.TrimRight(n[:253], "-.")
	}
	return n
}

func (o Options) objectMeta(p faults.Planned) metav1.ObjectMeta {
	labels := map[string]string{LabelManagedBy: "soakd", LabelFaultID: labelValue(p.ID), LabelKind: labelValue(p.Kind)}
	if o.Name != "" {
		labels[LabelRun] = labelValue(o.Name)
	}
	ann := map[string]string{AnnotationAt: p.At.String(), AnnotationDuration: p.Duration.String()}
	if p.Target != "" {
		ann[AnnotationTarget] = p.Target
	}
	if len(p.Params) > 0 {
		ann[AnnotationParams] = formatParams(p.Params)
	}
	return metav1.ObjectMeta{Name: ObjectName(o.Name, p.ID), Namespace: o.Namespace, Labels: labels, Annotations: ann}
}

// selection is where a fault lands: the pods it acts on and, for the
// network kinds, the peers on the other side of their links.
type selection struct {
	pods  v1alpha1.PodSelector
	peers *v1alpha1.PodSelector // nil: a target with no peers (self)
	notes []string
	self  bool
}

// PodName is the pod that runs a component's node: node-N (host-N, ...) is
// pod soakd-<component>-N of its StatefulSet, whose ordinals start at 1.
func PodName(component, node string) (string, error) {
	i := strings.LastIndexByte(node, '-')
	n, err := strconv.Atoi(node[i+1:])
	if i <= 0 || err != nil || n < 1 || strconv.Itoa(n) != node[i+1:] {
		return "", fmt.Errorf("node %q: want a name ending in -N, N from 1 (node-2, host-1)", node)
	}
	return "soakd-" + component + "-" + strconv.Itoa(n), nil
}

// roleSelectors are the targets that name a role only known at run time.
var roleSelectors = map[string]bool{"leader": true, "follower": true, "primary": true, "backup": true,
	"host": true, "link": true, "source": true, "destination": true}

// selectTarget maps a plan's target to pods. A role known only at run time
// (leader) becomes mode one over the component's pods, and minority and
// majority a fixed number of them; a note on the object says so. A named
// node is its pod, and its peers are the component's other pods.
func (o Options) selectTarget(target string) (selection, error) {
	ns := []string{o.Namespace}
	if target == "self" {
		s := v1alpha1.PodSelector{Mode: v1alpha1.AllMode, Selector: v1alpha1.PodSelectorSpec{GenericSelectorSpec: v1alpha1.GenericSelectorSpec{
			Namespaces: ns, LabelSelectors: map[string]string{LabelName: "soakd", LabelComponent: HarnessComponent}}}}
		return selection{pods: s, self: true}, nil
	}
	comp, sel, ok := strings.Cut(target, "/")
	if !ok || comp == "" || sel == "" {
		return selection{}, fmt.Errorf("target %q: want self or <component>/<selector>", target)
	}
	n, known := o.Replicas[comp]
	if !known {
		return selection{}, fmt.Errorf("target %q: component %s has no pods here (enabled: %s)", target, comp, strings.Join(slices.Sorted(maps.Keys(o.Replicas)), ", "))
	}
	labels := map[string]string{LabelName: "soakd", LabelComponent: comp}
	of := func(mode v1alpha1.SelectorMode, value string) v1alpha1.PodSelector {
		return v1alpha1.PodSelector{Mode: mode, Value: value, Selector: v1alpha1.PodSelectorSpec{GenericSelectorSpec: v1alpha1.GenericSelectorSpec{
			Namespaces: ns, LabelSelectors: maps.Clone(labels)}}}
	}
	all := of(v1alpha1.AllMode, "")
	set := "soakd-" + comp
	minority := (n - 1) / 2
	if m, ok := o.Minority[comp]; ok {
		minority = m
	}
	switch {
	case sel == "all":
		return selection{pods: all, peers: &all}, nil
	case roleSelectors[sel]:
		return selection{pods: of(v1alpha1.OneMode, ""), peers: &all,
			notes: []string{fmt.Sprintf("%s is known only at run time: Chaos Mesh picks one pod of %s (mode one)", target, set)}}, nil
	case sel == "minority" || sel == "majority":
		k := minority
		if sel == "majority" {
			k = n - minority
		}
		if k < 1 {
			return selection{}, fmt.Errorf("target %q: %s of %d nodes is no node", target, sel, n)
		}
		return selection{pods: of(v1alpha1.FixedMode, strconv.Itoa(k)), peers: &all,
			notes: []string{fmt.Sprintf("%s is known only at run time: Chaos Mesh picks %d pod(s) of %s (mode fixed)", target, k, set)}}, nil
	}
	var pods []string
	for _, node := range strings.Split(sel, ",") {
		pod, err := PodName(comp, strings.TrimSpace(node))
		if err != nil {
			return selection{}, fmt.Errorf("target %q: %w", target, err)
		}
		if i, _ := strconv.Atoi(pod[strings.LastIndexByte(pod, '-')+1:]); i > n {
			return selection{}, fmt.Errorf("target %q: %s has %d nodes", target, comp, n)
		}
		if !slices.Contains(pods, pod) {
			pods = append(pods, pod)
		}
	}
	s := v1alpha1.PodSelector{Mode: v1alpha1.AllMode, Selector: v1alpha1.PodSelectorSpec{Pods: map[string][]string{o.Namespace: pods}}}
	peers := all
	peers.Selector.ExpressionSelectors = v1alpha1.LabelSelectorRequirements{{Key: LabelPodName, Operator: metav1.LabelSelectorOpNotIn, Values: pods}}
	return selection{pods: s, peers: &peers}, nil
}

// sanitize makes s fit a Kubernetes name: lower case letters, digits and
// dashes, starting and ending with a letter or digit.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// labelValue makes s fit a label value (63 characters).
func labelValue(s string) string {
	v := sanitize(s)
	if len(v) > 63 {
		v = strings.TrimRight(v[:63], "-")
	}
	return v
}

func formatParams(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
