package load

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// opPicker draws operations by weight, in a stable (sorted) order so the
// same seed always gives the same sequence.
type opPicker struct {
	names []string
	cum   []float64
}

func newOpPicker(mix map[string]float64) (*opPicker, error) {
	p := &opPicker{}
	for name := range mix {
		p.names = append(p.names, name)
	}
	sort.Strings(p.names)
	total := 0.0
	for _, n := range p.names {
		total += mix[n]
		p.cum = append(p.cum, total)
	}
	if !(total > 0) {
		return nil, fmt.Errorf("load: mix weights sum to %v", total)
	}
	for i := range p.cum {
		p.cum[i] /= total
	}
	return p, nil
}

func (p *opPicker) pick(rng *rand.Rand) string {
	u := rng.Float64()
	i := sort.SearchFloat64s(p.cum, u)
	return p.names[min(i, len(p.names)-1)]
}

// keyPicker draws key indexes uniform or Zipfian over [0, keys).
type keyPicker struct {
	keys int
	zipf *rand.Zipf
}

// zipfS is the Zipf exponent: a few hot keys, a long tail.
const zipfS = 1.1

func newKeyPicker(keys int, dist string, rng *rand.Rand) *keyPicker {
	k := &keyPicker{keys: keys}
	if dist == "zipf" && keys > 1 {
		k.zipf = rand.NewZipf(rng, zipfS, 1, uint64(keys-1))
	}
	return k
}

func (k *keyPicker) pick(rng *rand.Rand) int {
	if k.zipf != nil {
		return int(k.zipf.Uint64())
	}
	return rng.IntN(k.keys)
}
