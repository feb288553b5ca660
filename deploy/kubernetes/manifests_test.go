package kubernetes_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/soakd/soakd/internal/chaosmesh"
	compbuiltin "github.com/soakd/soakd/internal/components/builtin"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	faultbuiltin "github.com/soakd/soakd/internal/faults/builtin"
)

const (
	namespace  = chaosmesh.DefaultNamespace
	configFile = "soakd.yaml" // the key of soakd-config holding soakd's config
)

// manifests are every object of the kustomization, decoded strictly.
type manifests struct {
	all          []client.Object
	deployments  map[string]*appsv1.Deployment
	statefulsets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configmaps   map[string]*corev1.ConfigMap
	pvcs         map[string]*corev1.PersistentVolumeClaim
	accounts     map[string]*corev1.ServiceAccount
	roles        map[string]*rbacv1.Role
	bindings     map[string]*rbacv1.RoleBinding
	namespaces   map[string]*corev1.Namespace
}

// decoder decodes into the Kubernetes API types: an unknown kind, an
// unknown field or a field given twice is an error.
var decoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// decodeAll decodes every document of a YAML stream.
func decodeAll(t *testing.T, name string, r io.Reader) []client.Object {
	t.Helper()
	var out []client.Object
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for i := 0; ; i++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		co, ok := obj.(client.Object)
		if !ok {
			t.Fatalf("%s: document %d: %s is not an object", name, i, gvk)
		}
		out = append(out, co)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			b.Write(line)
		}
	}
	return b.Bytes()
}

func load(t *testing.T) *manifests {
	t.Helper()
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := sigsyaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if !slices.Equal(slices.Sorted(slices.Values(k.Resources)), files) {
		t.Fatalf("kustomization.yaml lists %v, the directory holds %v", k.Resources, files)
	}
	m := &manifests{deployments: map[string]*appsv1.Deployment{}, statefulsets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, configmaps: map[string]*corev1.ConfigMap{}, pvcs: map[string]*corev1.PersistentVolumeClaim{},
		accounts: map[string]*corev1.ServiceAccount{}, roles: map[string]*rbacv1.Role{}, bindings: map[string]*rbacv1.RoleBinding{},
		namespaces: map[string]*corev1.Namespace{}}
	for _, f := range k.Resources {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		objs := decodeAll(t, f, fh)
		fh.Close()
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		for _, o := range objs {
			m.add(t, f, o)
		}
	}
	return m
}

func (m *manifests) add(t *testing.T, file string, o client.Object) {
	t.Helper()
	switch v := o.(type) {
	case *appsv1.Deployment:
		put(t, file, m.deployments, v)
	case *appsv1.StatefulSet:
		put(t, file, m.statefulsets, v)
	case *corev1.Service:
		put(t, file, m.services, v)
	case *corev1.ConfigMap:
		put(t, file, m.configmaps, v)
	case *corev1.PersistentVolumeClaim:
		put(t, file, m.pvcs, v)
	case *corev1.ServiceAccount:
		put(t, file, m.accounts, v)
	case *rbacv1.Role:
		put(t, file, m.roles, v)
	case *rbacv1.RoleBinding:
		put(t, file, m.bindings, v)
	case *corev1.Namespace:
		put(t, file, m.namespaces, v)
	default:
		t.Errorf("%s: %T %s: a kind this test does not check; add it here", file, o, o.GetName())
	}
	m.all = append(m.all, o)
}

func put[T client.Object](t *testing.T, file string, to map[string]T, o T) {
	t.Helper()
	if _, seen := to[o.GetName()]; seen {
		t.Errorf("%s: a second %T %s", file, o, o.GetName())
	}
	to[o.GetName()] = o
}

// TestManifestsDecode: every document of every file decodes strictly
// into its Kubernetes type, lives in soakd's namespace and carries soakd's
// name label.
func TestManifestsDecode(t *testing.T) {
	m := load(t)
	if _, ok := m.namespaces[namespace]; !ok {
		t.Errorf("no Namespace %s", namespace)
	}
	for _, o := range m.all {
		ref := fmt.Sprintf("%T %s", o, o.GetName())
		if _, isNS := o.(*corev1.Namespace); !isNS && o.GetNamespace() != namespace {
			t.Errorf("%s: namespace %q, want %s", ref, o.GetNamespace(), namespace)
		}
		if o.GetLabels()[chaosmesh.LabelName] != "soakd" {
			t.Errorf("%s: no %s: soakd label", ref, chaosmesh.LabelName)
		}
	}
}

// TestDecodeRejects proves the decoding can fail: an unknown field, an
// unknown kind.
func TestDecodeRejects(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
		"apiVersion: v1\nkind: Servic\nmetadata: {name: x}\n",
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: 1, replicas: 2}\n",
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("accepted:\n%s", doc)
		}
	}
}

// TestKustomizeBuild builds the kustomization with kubectl's kustomize,
// as kubectl apply -k would, and decodes what it produces.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not in PATH")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	built := decodeAll(t, "kubectl kustomize", bytes.NewReader(out))
	if n := len(load(t).all); len(built) != n {
		t.Errorf("kustomize built %d objects, the files hold %d", len(built), n)
	}
}

func podLabels(m *manifests) map[string]map[string]string {
	out := map[string]map[string]string{}
	for n, d := range m.deployments {
		out["Deployment "+n] = d.Spec.Template.Labels
	}
	for n, s := range m.statefulsets {
		out["StatefulSet "+n] = s.Spec.Template.Labels
	}
	return out
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func container(t *testing.T, spec corev1.PodSpec, owner string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == chaosmesh.Container {
			return c
		}
	}
	t.Fatalf("%s: no container %s (Chaos Mesh's stress and IO faults select it by name)", owner, chaosmesh.Container)
	return corev1.Container{}
}

func portNamed(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// TestServicesSelectWorkloads: each Service selects the pods of exactly
// one workload, on ports its container has.
func TestServicesSelectWorkloads(t *testing.T) {
	m := load(t)
	pods := podLabels(m)
	for name, svc := range m.services {
		var owners []string
		for owner, labels := range pods {
			if matches(svc.Spec.Selector, labels) {
				owners = append(owners, owner)
			}
		}
		if len(owners) != 1 {
			t.Errorf("Service %s selects %v, want exactly one workload's pods", name, owners)
			continue
		}
		var spec corev1.PodSpec
		if d, ok := m.deployments[strings.TrimPrefix(owners[0], "Deployment ")]; ok {
			spec = d.Spec.Template.Spec
		} else {
			spec = m.statefulsets[strings.TrimPrefix(owners[0], "StatefulSet ")].Spec.Template.Spec
		}
		c := container(t, spec, owners[0])
		for _, p := range svc.Spec.Ports {
			if _, ok := portNamed(c, p.TargetPort.String()); !ok {
				t.Errorf("Service %s port %s targets %s, which %s's container does not name", name, p.Name, p.TargetPort.String(), owners[0])
			}
		}
	}
}

// components are the StatefulSets and their node ids' prefix.
var components = map[string]string{"raft": "node", "pbft": "node"}

// TestStatefulSets: one per component, each with a headless Service that
// resolves its members before they are ready, pods named after their node
// (ordinals from 1, --id from the pod-index label), every member's peer
// address (the pod's own stable name, which it listens on), the HTTP API
// on the port named http, ready on /healthz, and the data volume where
// Chaos Mesh's disk faults expect it.
func TestStatefulSets(t *testing.T) {
	m := load(t)
	var want []string
	for comp := range components {
		want = append(want, "soakd-"+comp)
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(m.statefulsets)); !slices.Equal(got, want) {
		t.Errorf("StatefulSets %v, want %v", got, want)
	}
	for comp, prefix := range components {
		name := "soakd-" + comp
		ss, ok := m.statefulsets[name]
		if !ok {
			continue
		}
		c := container(t, ss.Spec.Template.Spec, name)
		svc, ok := m.services[ss.Spec.ServiceName]
		switch {
		case !ok:
			t.Errorf("%s: serviceName %q names no Service", name, ss.Spec.ServiceName)
		case svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses:
			t.Errorf("%s: Service %s must be headless and publish members before they are ready", name, svc.Name)
		case !matches(svc.Spec.Selector, ss.Spec.Template.Labels):
			t.Errorf("%s: Service %s does not select its pods", name, svc.Name)
		default:
			// A headless Service's names resolve to the pods: a client
			// reaches the container's port, whatever the Service's says.
			for _, p := range svc.Spec.Ports {
				if cp, ok := portNamed(c, p.TargetPort.String()); ok && cp != p.Port {
					t.Errorf("%s: Service %s port %s is %d, the container's is %d", name, svc.Name, p.Name, p.Port, cp)
				}
			}
		}
		if !matches(ss.Spec.Selector.MatchLabels, ss.Spec.Template.Labels) {
			t.Errorf("%s: selector does not match its pod template", name)
		}
		if l := ss.Spec.Template.Labels; l[chaosmesh.LabelName] != "soakd" || l[chaosmesh.LabelComponent] != comp {
			t.Errorf("%s: pod labels %v, want the ones Chaos Mesh objects select (%s: %s)", name, l, chaosmesh.LabelComponent, comp)
		}
		if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("%s: podManagementPolicy %q: members start together (Parallel)", name, ss.Spec.PodManagementPolicy)
		}
		if ss.Spec.Ordinals == nil || ss.Spec.Ordinals.Start != 1 {
			t.Errorf("%s: ordinals must start at 1, so pod %s-N is %s-N", name, name, prefix)
		}
		n := int(ptrOr(ss.Spec.Replicas, 1))
		if c.LivenessProbe != nil {
			t.Errorf("%s: a liveness probe would turn a partition into a restart", name)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: readiness must be GET /healthz on the http port", name)
		}
		httpPort, _ := portNamed(c, "http")
		if host, port, err := net.SplitHostPort(argValue(c.Args, "--listen")); err != nil || port != strconv.Itoa(int(httpPort)) || (host != "0.0.0.0" && host != "") {
			t.Errorf("%s: --listen=%s, want all interfaces on the http port %d (soakd and Prometheus come by the pod's address)", name, argValue(c.Args, "--listen"), httpPort)
		}
		args := strings.Join(c.Args, " ")
		for _, want := range []string{"node ", "--component=" + comp + " ", "--id=" + prefix + "-$(POD_INDEX) "} {
			if !strings.Contains(args+" ", want) {
				t.Errorf("%s: args %q lack %q", name, args, want)
			}
		}
		var podIndex bool
		for _, e := range c.Env {
			if e.Name == "POD_INDEX" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
				e.ValueFrom.FieldRef.FieldPath == "metadata.labels['"+appsv1.PodIndexLabel+"']" {
				podIndex = true
			}
		}
		if !podIndex {
			t.Errorf("%s: POD_INDEX must come from the %s label", name, appsv1.PodIndexLabel)
		}
		peerPort, ok := portNamed(c, "peer")
		if !ok {
			t.Errorf("%s: no port named peer", name)
		}
		var peers []string
		for _, a := range c.Args {
			if p, ok := strings.CutPrefix(a, "--peer="); ok {
				peers = append(peers, p)
			}
		}
		if len(peers) != n {
			t.Errorf("%s: %d --peer, %d replicas", name, len(peers), n)
		}
		for i, p := range peers {
			want := fmt.Sprintf("%s-%d=%s-%d.%s:%d", prefix, i+1, name, i+1, ss.Spec.ServiceName, peerPort)
			if p != want {
				t.Errorf("%s: --peer=%s, want %s", name, p, want)
			}
		}
		if len(ss.Spec.VolumeClaimTemplates) != 1 {
			t.Fatalf("%s: want one volume claim template (the node's data)", name)
		}
		if !mountedAt(c, ss.Spec.VolumeClaimTemplates[0].Name, chaosmesh.DefaultDataPath) {
			t.Errorf("%s: volume %s must be mounted at %s, where disk faults act", name, ss.Spec.VolumeClaimTemplates[0].Name, chaosmesh.DefaultDataPath)
		}
		if sd := argValue(c.Args, "--state-dir"); !strings.HasPrefix(sd, chaosmesh.DefaultDataPath+"/") {
			t.Errorf("%s: --state-dir %q is not on the data volume", name, sd)
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func mountedAt(c corev1.Container, volume, path string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.Name == volume && vm.MountPath == path {
			return true
		}
	}
	return false
}

func argValue(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// TestHarness: the Deployment runs one soakd under the service account the
// Chaos Mesh Role is bound to, with its config from the ConfigMap and its
// state on the claim, listening where its Service and probes look.
func TestHarness(t *testing.T) {
	m := load(t)
	d, ok := m.deployments["soakd"]
	if !ok {
		t.Fatal("no Deployment soakd")
	}
	spec := d.Spec.Template.Spec
	if ptrOr(d.Spec.Replicas, 1) != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("the harness must be one replica, replaced by Recreate: two would fight over the state dir")
	}
	if d.Spec.Template.Labels[chaosmesh.LabelComponent] != chaosmesh.HarnessComponent {
		t.Errorf("harness pod labels %v: target self selects %s: %s", d.Spec.Template.Labels, chaosmesh.LabelComponent, chaosmesh.HarnessComponent)
	}
	if _, ok := m.accounts[spec.ServiceAccountName]; !ok {
		t.Errorf("serviceAccountName %q names no ServiceAccount", spec.ServiceAccountName)
	}
	bound := false
	for _, b := range m.bindings {
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == spec.ServiceAccountName && s.Namespace == namespace {
				if _, ok := m.roles[b.RoleRef.Name]; b.RoleRef.Kind == "Role" && ok {
					bound = true
				}
			}
		}
	}
	if !bound {
		t.Errorf("no RoleBinding binds a Role to ServiceAccount %s", spec.ServiceAccountName)
	}
	c := container(t, spec, "Deployment soakd")
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("args %v: want soakd run", c.Args)
	}
	cfgPath := argValue(c.Args, "--config")
	found := false
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			cm, ok := m.configmaps[v.ConfigMap.Name]
			if !ok {
				t.Errorf("volume %s: ConfigMap %s does not exist", v.Name, v.ConfigMap.Name)
				continue
			}
			for _, vm := range c.VolumeMounts {
				if vm.Name == v.Name {
					if _, ok := cm.Data[strings.TrimPrefix(cfgPath, vm.MountPath+"/")]; ok && strings.HasPrefix(cfgPath, vm.MountPath+"/") {
						found = true
					}
				}
			}
		case v.PersistentVolumeClaim != nil:
			if _, ok := m.pvcs[v.PersistentVolumeClaim.ClaimName]; !ok {
				t.Errorf("volume %s: claim %s does not exist", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
			if !mountedAt(c, v.Name, chaosmesh.DefaultDataPath) {
				t.Errorf("volume %s must be mounted at %s, where disk faults on target self act", v.Name, chaosmesh.DefaultDataPath)
			}
		}
	}
	if !found {
		t.Errorf("--config=%s is no key of a mounted ConfigMap", cfgPath)
	}
	if sd := argValue(c.Args, "--state-dir"); !strings.HasPrefix(sd, chaosmesh.DefaultDataPath+"/") {
		t.Errorf("--state-dir %q is not on the state volume", sd)
	}
	_, port, err := net.SplitHostPort(argValue(c.Args, "--listen"))
	if err != nil {
		t.Fatalf("--listen: %v", err)
	}
	if p, ok := portNamed(c, "http"); !ok || strconv.Itoa(int(p)) != port {
		t.Errorf("--listen port %s, container port http %d", port, p)
	}
	if svc, ok := m.services["soakd"]; !ok || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Error("Service soakd must expose the harness's http port")
	}
}

// TestRBAC: the Role lets soakd create, read and delete exactly the Chaos
// Mesh kinds it renders, by the plural names their CRDs declare.
func TestRBAC(t *testing.T) {
	m := load(t)
	role, ok := m.roles["soakd-chaos"]
	if !ok {
		t.Fatal("no Role soakd-chaos")
	}
	var plurals []string
	for _, f := range []string{"networkchaos", "podchaos", "stresschaos", "iochaos"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "chaosmesh", "testdata", "crds", "chaos-mesh.org_"+f+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Plural string `json:"plural"`
				} `json:"names"`
			} `json:"spec"`
		}
		if err := sigsyaml.Unmarshal(b, &crd); err != nil {
			t.Fatal(err)
		}
		if crd.Spec.Group != v1alpha1.SchemeGroupVersion.Group {
			t.Fatalf("%s: group %s", f, crd.Spec.Group)
		}
		plurals = append(plurals, crd.Spec.Names.Plural)
	}
	if len(role.Rules) != 1 {
		t.Fatalf("%d rules, want one for %s", len(role.Rules), v1alpha1.SchemeGroupVersion.Group)
	}
	r := role.Rules[0]
	if !slices.Equal(r.APIGroups, []string{v1alpha1.SchemeGroupVersion.Group}) {
		t.Errorf("apiGroups %v", r.APIGroups)
	}
	if !slices.Equal(slices.Sorted(slices.Values(r.Resources)), slices.Sorted(slices.Values(plurals))) {
		t.Errorf("resources %v, the CRDs' plurals are %v", r.Resources, plurals)
	}
	if want := []string{"create", "delete", "get", "list", "watch"}; !slices.Equal(slices.Sorted(slices.Values(r.Verbs)), want) {
		t.Errorf("verbs %v, want %v", r.Verbs, want)
	}
}

// soakdConfig is soakd-config's soakd.yaml: as written, and as soakd's
// config loader takes it.
func soakdConfig(t *testing.T, m *manifests) (map[string]any, *config.Config) {
	t.Helper()
	cm, ok := m.configmaps["soakd-config"]
	if !ok {
		t.Fatal("no ConfigMap soakd-config")
	}
	text, ok := cm.Data[configFile]
	if !ok {
		t.Fatalf("soakd-config has no %s", configFile)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	cfg, err := config.Parse([]byte(text), faultbuiltin.Registry())
	if err != nil {
		t.Fatalf("%s is not a valid soakd config:\n%v", configFile, err)
	}
	return doc, cfg
}

// nodeConfigArgs are the flags of a component's node that must carry a
// value of soakd's config.
func nodeConfigArgs(cfg *config.Config) map[string]map[string]string {
	return map[string]map[string]string{
		"raft": {},
		"pbft": {
			"--seed":     strconv.FormatUint(cfg.Run.Seed, 10), // the replicas and soakd derive the same keys from it
			"--max-keys": strconv.Itoa(cfg.Load.PBFT.Keys),
		},
	}
}

// TestConfig: soakd's config runs the chaosmesh backend, listens where the
// Deployment says, keeps its state on the volume, pins the run's seed,
// names every node of each StatefulSet by its stable address, agrees with
// the node args that come from it (PBFT's --seed and --max-keys), and
// leaves off every component that has no StatefulSet here.
func TestConfig(t *testing.T) {
	m := load(t)
	doc, cfg := soakdConfig(t, m)
	if run, _ := doc["run"].(map[string]any); run["seed"] == nil {
		t.Error("run.seed is not set: pin it, the PBFT replicas' --seed must be the run's seed, not whatever the default becomes")
	}
	if cfg.Faults.Backend != "chaosmesh" {
		t.Errorf("faults.backend %q, want chaosmesh", cfg.Faults.Backend)
	}
	c := container(t, m.deployments["soakd"].Spec.Template.Spec, "Deployment soakd")
	if cfg.Listen != argValue(c.Args, "--listen") {
		t.Errorf("listen %q, the Deployment passes --listen=%s", cfg.Listen, argValue(c.Args, "--listen"))
	}
	if cfg.StateDir != argValue(c.Args, "--state-dir") {
		t.Errorf("state_dir %q, the Deployment passes --state-dir=%s", cfg.StateDir, argValue(c.Args, "--state-dir"))
	}
	counts := map[string]int{"raft": cfg.Components.Raft.Nodes, "pbft": cfg.Components.PBFT.Replicas, "migration": cfg.Components.Migration.Hosts}
	enabled := map[string]bool{"raft": cfg.Components.Raft.Enabled, "pbft": cfg.Components.PBFT.Enabled, "migration": cfg.Components.Migration.Enabled}
	for comp, on := range enabled {
		if _, ok := components[comp]; !ok && on {
			t.Errorf("components.%s is enabled, but has no StatefulSet here: it would run inside the harness pod, where Chaos Mesh cannot fault it", comp)
		}
	}
	comps := doc["components"].(map[string]any)
	argsFrom := nodeConfigArgs(cfg)
	for comp, prefix := range components {
		ss, ok := m.statefulsets["soakd-"+comp]
		if !ok {
			t.Errorf("no StatefulSet soakd-%s", comp)
			continue
		}
		n := int(ptrOr(ss.Spec.Replicas, 1))
		args := container(t, ss.Spec.Template.Spec, ss.Name).Args
		flags, ok := argsFrom[comp]
		if !ok {
			t.Errorf("%s: nodeConfigArgs does not say which of its args come from the config", ss.Name)
		}
		for flag, want := range flags {
			if got := argValue(args, flag); got != want {
				t.Errorf("%s: %s=%s, the config says %s", ss.Name, flag, got, want)
			}
		}
		if !enabled[comp] || counts[comp] != n {
			t.Errorf("components.%s: enabled %v, %d nodes; StatefulSet has %d replicas", comp, enabled[comp], counts[comp], n)
		}
		cc, _ := comps[comp].(map[string]any)
		if cc["mode"] != "remote" {
			t.Errorf("components.%s.mode %v, want remote", comp, cc["mode"])
		}
		addrs, _ := cc["addresses"].(map[string]any)
		httpPort, _ := portNamed(container(t, ss.Spec.Template.Spec, ss.Name), "http")
		if len(addrs) != n {
			t.Errorf("components.%s.addresses: %d, want %d", comp, len(addrs), n)
		}
		for i := 1; i <= n; i++ {
			id := fmt.Sprintf("%s-%d", prefix, i)
			if want := fmt.Sprintf("%s-%d.%s:%d", ss.Name, i, ss.Spec.ServiceName, httpPort); addrs[id] != want {
				t.Errorf("components.%s.addresses.%s = %v, want %s", comp, id, addrs[id], want)
			}
		}
	}
}

// TestChaosObjectsSelectPods renders the plan of this config and checks
// every Chaos Mesh object against the manifests: its selectors pick pods
// that exist, in this namespace, with the container and volume it acts on.
func TestChaosObjectsSelectPods(t *testing.T) {
	m := load(t)
	_, cfg := soakdConfig(t, m)
	plan, err := faults.Plan(cfg, cfg.Run.Seed, faultbuiltin.Registry(), compbuiltin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	r, err := chaosmesh.Render(plan, chaosmesh.OptionsFor(cfg, namespace, "k8s"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Objects) == 0 {
		t.Fatal("the plan renders no object")
	}
	type pod struct {
		owner  string
		name   string // a StatefulSet pod's name; "" for the Deployment's
		labels map[string]string
		spec   corev1.PodSpec
	}
	var pods []pod
	for n, d := range m.deployments {
		pods = append(pods, pod{"Deployment " + n, "", d.Spec.Template.Labels, d.Spec.Template.Spec})
	}
	for n, s := range m.statefulsets {
		for i := 1; i <= int(ptrOr(s.Spec.Replicas, 1)); i++ {
			l := maps.Clone(s.Spec.Template.Labels)
			l[chaosmesh.LabelPodName] = fmt.Sprintf("%s-%d", n, i)
			pods = append(pods, pod{"StatefulSet " + n, l[chaosmesh.LabelPodName], l, s.Spec.Template.Spec})
		}
	}
	selected := func(ps v1alpha1.PodSelectorSpec) []pod {
		var out []pod
		for _, p := range pods {
			if len(ps.Pods) > 0 {
				if slices.Contains(ps.Pods[namespace], p.name) && p.name != "" {
					out = append(out, p)
				}
				continue
			}
			if !matches(ps.LabelSelectors, p.labels) {
				continue
			}
			ok := true
			for _, e := range ps.ExpressionSelectors {
				if e.Key == chaosmesh.LabelPodName && string(e.Operator) == "NotIn" && slices.Contains(e.Values, p.labels[e.Key]) {
					ok = false
				}
			}
			if ok {
				out = append(out, p)
			}
		}
		return out
	}
	covered := map[string]bool{} // the workloads whose pods some object selects
	for _, o := range r.Objects {
		ref := o.Fault.ID + " " + o.Object.GetObjectKind().GroupVersionKind().Kind
		var sels []v1alpha1.PodSelector
		var containers []string
		volume := ""
		switch v := o.Object.(type) {
		case *v1alpha1.NetworkChaos:
			sels = append(sels, v.Spec.PodSelector)
			if v.Spec.Target != nil {
				sels = append(sels, *v.Spec.Target)
			}
		case *v1alpha1.PodChaos:
			sels, containers = append(sels, v.Spec.PodSelector), v.Spec.ContainerNames
		case *v1alpha1.StressChaos:
			sels, containers = append(sels, v.Spec.PodSelector), v.Spec.ContainerNames
		case *v1alpha1.IOChaos:
			sels, containers, volume = append(sels, v.Spec.PodSelector), v.Spec.ContainerNames, v.Spec.VolumePath
		}
		for _, s := range sels {
			if !slices.Equal(s.Selector.Namespaces, []string{namespace}) {
				t.Errorf("%s: selects in namespaces %v", ref, s.Selector.Namespaces)
			}
			got := selected(s.Selector)
			want := 1
			if s.Mode == v1alpha1.FixedMode {
				want, _ = strconv.Atoi(s.Value)
			}
			if len(got) < want {
				t.Errorf("%s: selector %+v picks %d pods, needs %d", ref, s.Selector, len(got), want)
			}
			for _, p := range got {
				covered[p.owner] = true
				for _, cn := range containers {
					c := container(t, p.spec, p.owner)
					if c.Name != cn {
						t.Errorf("%s: container %s is not in %s", ref, cn, p.owner)
					}
					if volume != "" && !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == volume }) {
						t.Errorf("%s: volume path %s is not a mount of %s", ref, volume, p.owner)
					}
				}
			}
		}
	}
	// Else the checks above proved nothing about a component's pods.
	for comp := range components {
		if owner := "StatefulSet soakd-" + comp; !covered[owner] {
			t.Errorf("no object of the plan selects %s's pods", owner)
		}
	}
}

// TestPrometheusScrapeConfig: the scrape config uses only keys Prometheus
// has (strict decoding), its relabelling passes Prometheus's own
// validation, its static target is the harness's Service, and promtool
// accepts the jobs it can check (Debian's is built without Kubernetes
// discovery, and Prometheus's config loader would pull every cloud SDK
// into go.mod).
func TestPrometheusScrapeConfig(t *testing.T) {
	m := load(t)
	cm, ok := m.configmaps["soakd-prometheus-scrape"]
	if !ok {
		t.Fatal("no ConfigMap soakd-prometheus-scrape")
	}
	text := cm.Data["prometheus.yml"]
	type job struct {
		JobName        string `yaml:"job_name"`
		ScrapeInterval string `yaml:"scrape_interval"`
		StaticConfigs  []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		KubernetesSDConfigs []struct {
			Role       string `yaml:"role"`
			Namespaces struct {
				Names []string `yaml:"names"`
			} `yaml:"namespaces"`
		} `yaml:"kubernetes_sd_configs"`
		RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
	}
	var pc struct {
		ScrapeConfigs []job `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&pc); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	svc := m.services["soakd"]
	want := fmt.Sprintf("%s.%s.svc:%d", svc.Name, namespace, svc.Spec.Ports[0].Port)
	var targets []string
	var static []job
	for _, sc := range pc.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
		for _, sd := range sc.KubernetesSDConfigs {
			if sd.Role != "pod" || !slices.Equal(sd.Namespaces.Names, []string{namespace}) {
				t.Errorf("job %s: discovers %s in %v, want pods in %s", sc.JobName, sd.Role, sd.Namespaces.Names, namespace)
			}
		}
		for i, rc := range sc.RelabelConfigs {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				t.Errorf("job %s: relabel_configs[%d]: %v", sc.JobName, i, err)
			}
		}
		if len(sc.KubernetesSDConfigs) == 0 {
			static = append(static, sc)
		}
	}
	if !slices.Equal(targets, []string{want}) {
		t.Errorf("static targets %v, want the harness Service %s", targets, want)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not in PATH (Debian package prometheus)")
	}
	// The static jobs, back as YAML for promtool.
	var raw struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(text), &raw); err != nil {
		t.Fatal(err)
	}
	raw.ScrapeConfigs = slices.DeleteFunc(raw.ScrapeConfigs, func(j map[string]any) bool { return j["kubernetes_sd_configs"] != nil })
	if len(raw.ScrapeConfigs) != len(static) {
		t.Fatalf("%d static jobs, decoded %d", len(raw.ScrapeConfigs), len(static))
	}
	b, err := yaml.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
