package byzantine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

// Out is one message a replica sends, addressed to one receiver: the
// shell expands a broadcast into one Out per receiver before it calls a
// Behavior, then authenticates and sends each Out the Behavior returns.
type Out struct {
	To  protocol.ReplicaID
	Msg protocol.Message
	// Forge asks the shell's auth layer to garble the authenticator (a
	// bad MAC for To, or a bad signature).
	Forge bool
}

// Behavior is a Byzantine replica's rewriting of what it sends: each
// outgoing message in, zero (drop), one (pass or rewrite) or several
// (duplicate, replay) messages out. A Behavior is deterministic given its
// seed and the sequence of messages it is given, and holds bounded state.
// It is not safe for concurrent use.
//
// Outgoing never modifies what out.Msg refers to (batches, requests, view
// changes): a rewrite copies what it changes. The messages it returns may
// share unchanged parts with its inputs and with each other, so the caller
// must not modify them in place either.
type Behavior interface {
	// Name is the behaviour's name, as given to New.
	Name() string
	// Outgoing is what to send instead of out.
	Outgoing(out Out) []Out
}

// Behaviour names.
const (
	Equivocate    = "equivocate"
	Mutate        = "mutate"
	Forge         = "forge"
	Replay        = "replay"
	Silent        = "silent"
	LieViewChange = "lie-view-change"
	Twin          = "twin"
)

// spec is one behaviour: the parameters it takes, their defaults, and how
// to build it from them.
type spec struct {
	name   string
	params []string // the parameters it accepts
	def    config   // defaults
	build  func(c config, self protocol.ReplicaID, n int, rng *rand.Rand) (Behavior, error)
}

// config is a behaviour's parsed parameters.
type config struct {
	share float64 // share: fraction of receivers (0..1)
	rate  float64 // rate: fraction of sends (0..1)
	kinds kindSet // kinds: 0 means every kind
	mode  string  // mode (lie-view-change)
}

var specs = []spec{
	{name: Equivocate, params: []string{"share"}, def: config{share: 0.5}, build: newEquivocate},
	{name: Mutate, params: []string{"share", "kinds"}, def: config{share: 0.5}, build: newMutate},
	{name: Forge, params: []string{"share", "kinds"}, def: config{share: 1}, build: newForge},
	{name: Replay, params: []string{"rate"}, def: config{rate: 0.2}, build: newReplay},
	{name: Silent, params: []string{"kinds"}, build: newSilent},
	{name: LieViewChange, params: []string{"mode"}, def: config{mode: "forge"}, build: newLieViewChange},
	{name: Twin, build: func(config, protocol.ReplicaID, int, *rand.Rand) (Behavior, error) { return twin{}, nil }},
}

// Names lists the behaviours New knows, in a fixed order.
func Names() []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	return names
}

// IsTwin reports whether name is the twin behaviour, which the shell runs
// itself: a second instance of the replica with the same keys and
// identity, fed the same messages and sending alongside it. Its Behavior
// passes every message through unchanged.
func IsTwin(name string) bool { return name == Twin }

// Validate checks a behaviour's name and parameters as New does, without
// building it, and returns the same error for them.
func Validate(name string, params map[string]string) error {
	_, _, err := parse(name, params)
	return err
}

// New builds the behaviour name for replica self of n, seeded by seed
// (with self: replicas with the same seed behave differently). params are
// its parameters as strings (from YAML), nil for the defaults; see the
// package documentation for each behaviour's.
func New(name string, params map[string]string, self protocol.ReplicaID, n int, seed uint64) (Behavior, error) {
	s, c, err := parse(name, params)
	if err != nil {
		return nil, err
	}
	if n < 1 || int64(self) >= int64(n) {
		return nil, fmt.Errorf("byzantine: %s: replica %d is not one of n = %d", name, self, n)
	}
	b, err := s.build(c, self, n, rand.New(rand.NewPCG(seed, uint64(self))))
	if err != nil {
		return nil, err
	}
	return &described{Behavior: b, recipe: Recipe{Name: name, Params: params, Seed: seed}}, nil
}

// Recipe is what New built a behaviour from, but the replica: New with it
// on the same replica builds the same behaviour again, in another process
// (a replica that runs as `soakd node`).
type Recipe struct {
	Name   string            `json:"name"`
	Params map[string]string `json:"params,omitempty"`
	Seed   uint64            `json:"seed"`
}

type described struct {
	Behavior
	recipe Recipe
}

func (d *described) Recipe() Recipe { return d.recipe }

// RecipeOf is the recipe of a behaviour New built, seen through wrappers
// that have an Unwrap() Behavior method; false for one it did not build
// (a collusion shares state across replicas and cannot be rebuilt apart).
func RecipeOf(b Behavior) (Recipe, bool) {
	for b != nil {
		if d, ok := b.(interface{ Recipe() Recipe }); ok {
			return d.Recipe(), true
		}
		u, ok := b.(interface{ Unwrap() Behavior })
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	return Recipe{}, false
}

// parse finds name's spec and parses params against it.
func parse(name string, params map[string]string) (spec, config, error) {
	i := slices.IndexFunc(specs, func(s spec) bool { return s.name == name })
	if i < 0 {
		return spec{}, config{}, fmt.Errorf("byzantine: unknown behavior %q (want %s)", name, orList(Names()))
	}
	s := specs[i]
	c := s.def
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := params[k]
		if !slices.Contains(s.params, k) {
			want := "takes none"
			if len(s.params) > 0 {
				want = "want " + orList(s.params)
			}
			return s, c, fmt.Errorf("byzantine: %s: unknown parameter %q (%s)", name, k, want)
		}
		var err error
		switch k {
		case "share":
			c.share, err = parseFraction(v)
		case "rate":
			c.rate, err = parseFraction(v)
		case "kinds":
			c.kinds, err = parseKinds(v)
		case "mode":
			c.mode, err = parseMode(v)
		}
		if err != nil {
			return s, c, fmt.Errorf("byzantine: %s: %s %q: %v", name, k, v, err)
		}
	}
	return s, c, nil
}

// parseFraction reads a share or rate: a fraction ("0.2") or a percentage
// ("20%") between 0 and 1.
func parseFraction(v string) (float64, error) {
	s := strings.TrimSpace(v)
	pct := strings.HasSuffix(s, "%")
	s = strings.TrimSpace(strings.TrimSuffix(s, "%"))
	f, err := strconv.ParseFloat(s, 64)
	if err == nil && pct {
		f /= 100
	}
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return 0, fmt.Errorf("want a fraction 0..1 or a percentage 0%%..100%%")
	}
	return f, nil
}

func parseMode(v string) (string, error) {
	switch m := strings.TrimSpace(v); m {
	case "stale", "forge":
		return m, nil
	}
	return "", fmt.Errorf("want stale or forge")
}

// kindSet is a set of message kinds, a bit each; 0 stands for every kind
// where a behaviour takes kinds as a filter.
type kindSet uint32

// allKinds are the protocol's kinds, in order.
var allKinds = func() []protocol.Kind {
	var ks []protocol.Kind
	for k := protocol.KindRequest; !strings.HasPrefix(k.String(), "kind-"); k++ {
		ks = append(ks, k)
	}
	return ks
}()

func (s kindSet) has(k protocol.Kind) bool { return k < 32 && s&(1<<k) != 0 }

// match reports whether k passes the filter s: every kind when s is empty.
func (s kindSet) match(k protocol.Kind) bool { return s == 0 || s.has(k) }

// parseKinds reads a comma-separated list of kind names ("prepare,commit").
func parseKinds(v string) (kindSet, error) {
	var s kindSet
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(allKinds, func(k protocol.Kind) bool { return k.String() == name })
		if i < 0 {
			names := make([]string, len(allKinds))
			for j, k := range allKinds {
				names[j] = k.String()
			}
			if name == "" {
				return 0, fmt.Errorf("empty kind (want a comma-separated list of %s)", orList(names))
			}
			return 0, fmt.Errorf("unknown kind %q (want a comma-separated list of %s)", name, orList(names))
		}
		s |= 1 << allKinds[i]
	}
	return s, nil
}

// orList is "a, b or c".
func orList(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// randomDigest is a digest drawn from rng.
func randomDigest(rng *rand.Rand) protocol.Digest {
	var d protocol.Digest
	for i := 0; i < len(d); i += 8 {
		u := rng.Uint64()
		for j := range 8 {
			d[i+j] = byte(u >> (8 * j))
		}
	}
	return d
}

// alterOp returns a copy of op with one byte changed (or one byte, if op
// is empty): never equal to op.
func alterOp(rng *rand.Rand, op []byte) []byte {
	if len(op) == 0 {
		return []byte{byte(rng.Uint32())}
	}
	c := slices.Clone(op)
	c[rng.IntN(len(c))] ^= byte(1 + rng.IntN(255))
	return c
}

// alterRequest returns a copy of batch with request i's op altered.
func alterRequest(rng *rand.Rand, batch []protocol.Request, i int) []protocol.Request {
	c := slices.Clone(batch)
	c[i].Op = alterOp(rng, c[i].Op)
	return c
}
