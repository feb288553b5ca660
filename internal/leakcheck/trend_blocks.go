package leakcheck

import "slices"

// The multiset of pairwise slopes, in a form that a sliding window can
// update in O(n) small copies per step instead of re-sorting n²/2 slopes.

// blocks is a sorted multiset of float64 (no NaN) in blocks of at most
// blockCap values: a value is inserted or removed with a binary search over
// the blocks' last values, one within a block and a copy of at most
// blockCap values; the k-th smallest is a walk over the block lengths.
// Blocks split when full, and a block under a quarter full merges with its
// right neighbour when the two fit in three quarters of a block, so there
// are between len/blockCap and about 4·len/blockCap+1 of them. Storage is
// reused: a steady sliding window allocates nothing.
type blocks struct {
	vals  []float64 // segment g holds vals[g*blockCap : g*blockCap+blockCap]
	free  []int32   // unused segments
	seg   []int32   // segment of the i-th block, blocks in value order
	n     []int32   // length of the i-th block (> 0)
	last  []float64 // largest value of the i-th block
	total int
}

const blockCap = 64

func (b *blocks) block(i int) []float64 {
	o := int(b.seg[i]) * blockCap
	return b.vals[o : o+int(b.n[i])]
}

// newSeg returns an unused segment.
func (b *blocks) newSeg() int32 {
	if k := len(b.free); k > 0 {
		g := b.free[k-1]
		b.free = b.free[:k-1]
		return g
	}
	g := int32(len(b.vals) / blockCap)
	b.vals = append(b.vals, make([]float64, blockCap)...)
	return g
}

// reset fills b with sorted, in half-full blocks.
func (b *blocks) reset(sorted []float64) {
	b.free = b.free[:0]
	for g := range int32(len(b.vals) / blockCap) {
		b.free = append(b.free, g)
	}
	b.seg, b.n, b.last = b.seg[:0], b.n[:0], b.last[:0]
	b.total = len(sorted)
	for len(sorted) > 0 {
		c := min(len(sorted), blockCap/2)
		g := b.newSeg()
		copy(b.vals[int(g)*blockCap:], sorted[:c])
		b.seg = append(b.seg, g)
		b.n = append(b.n, int32(c))
		b.last = append(b.last, sorted[c-1])
		sorted = sorted[c:]
	}
}

// find returns the first block whose last value is >= v (len if none).
func (b *blocks) find(v float64) int {
	last := b.last
	lo, hi := 0, len(last)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if last[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (b *blocks) insert(v float64) {
	b.total++
	if len(b.seg) == 0 {
		g := b.newSeg()
		b.vals[int(g)*blockCap] = v
		b.seg, b.n, b.last = append(b.seg, g), append(b.n, 1), append(b.last, v)
		return
	}
	i := min(b.find(v), len(b.seg)-1)
	if b.n[i] == blockCap {
		b.split(i)
		if v > b.last[i] {
			i++
		}
	}
	blk := b.block(i)
	j := lowerBound(blk, v)
	blk = blk[:len(blk)+1] // within the segment: len < blockCap
	copy(blk[j+1:], blk[j:])
	blk[j] = v
	b.n[i]++
	if j == len(blk)-1 {
		b.last[i] = v
	}
}

// split moves the upper half of full block i into a new block i+1.
func (b *blocks) split(i int) {
	g := b.newSeg()
	blk := b.block(i)
	h := len(blk) / 2
	copy(b.vals[int(g)*blockCap:], blk[h:])
	b.seg = slices.Insert(b.seg, i+1, g)
	b.n = slices.Insert(b.n, i+1, int32(len(blk)-h))
	b.last = slices.Insert(b.last, i+1, b.last[i])
	b.n[i] = int32(h)
	b.last[i] = blk[h-1]
}

// remove deletes one value equal to v; false if there is none.
func (b *blocks) remove(v float64) bool {
	i := b.find(v)
	if i == len(b.seg) {
		return false
	}
	blk := b.block(i)
	j := lowerBound(blk, v)
	if j == len(blk) || blk[j] != v {
		return false
	}
	copy(blk[j:], blk[j+1:])
	blk = blk[:len(blk)-1]
	b.n[i]--
	b.total--
	switch {
	case len(blk) == 0:
		b.drop(i)
		return true
	case j == len(blk):
		b.last[i] = blk[len(blk)-1]
	}
	// Merge a small block with its right neighbour when both fit
	// comfortably, so the block count stays O(len/blockCap).
	if int(b.n[i]) < blockCap/4 && i+1 < len(b.seg) && int(b.n[i]+b.n[i+1]) <= blockCap*3/4 {
		next := b.block(i + 1)
		o := int(b.seg[i]) * blockCap
		copy(b.vals[o+len(blk):], next)
		b.n[i] += b.n[i+1]
		b.last[i] = b.last[i+1]
		b.drop(i + 1)
	}
	return true
}

// drop removes block i from the order and frees its segment.
func (b *blocks) drop(i int) {
	b.free = append(b.free, b.seg[i])
	b.seg = slices.Delete(b.seg, i, i+1)
	b.n = slices.Delete(b.n, i, i+1)
	b.last = slices.Delete(b.last, i, i+1)
}

// at stores the ranks-th smallest values (ranks ascending, in [0, total))
// into out.
func (b *blocks) at(ranks []int, out []float64) {
	base, i := 0, 0
	for k, r := range ranks {
		for base+int(b.n[i]) <= r {
			base += int(b.n[i])
			i++
		}
		out[k] = b.vals[int(b.seg[i])*blockCap+r-base]
	}
}

// lowerBound returns the first index of a with a[i] >= v (len(a) if none).
func lowerBound(a []float64, v float64) int {
	lo, hi := 0, len(a)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
