package leakcheck

// Selection of a few order statistics in expected linear time, for the
// intercept (a median of n residuals, recomputed on every call); the slopes'
// order statistics come from blocks instead.

// selectRanks partially orders a so that a[k] holds the k-th smallest value
// (0-based) for every k in ranks, which must lie in [0, len(a)) and be sorted
// ascending (duplicates allowed). It is quickselect for several ranks at
// once: one partition serves every rank, and only the sides holding a rank
// are visited. Expected time O(len(a)); recursion depth is at most len(ranks).
func selectRanks(a []float64, ranks []int) { selectIn(a, 0, len(a), ranks) }

func selectIn(a []float64, lo, hi int, ranks []int) {
	for len(ranks) > 0 {
		if hi-lo <= 16 {
			insertionSort(a[lo:hi])
			return
		}
		j := lo + partition(a[lo:hi]) // a[lo:j+1] <= pivot <= a[j+1:hi]
		split := 0
		for split < len(ranks) && ranks[split] <= j {
			split++
		}
		left, right := ranks[:split], ranks[split:]
		switch {
		case len(left) > 0 && len(right) > 0:
			selectIn(a, lo, j+1, left)
			lo, ranks = j+1, right
		case len(left) > 0:
			hi, ranks = j+1, left
		default:
			lo, ranks = j+1, right
		}
	}
}

// partition is Hoare's scheme with a median-of-three pivot moved to a[0]. It
// returns j with 0 <= j < len(a)-1, every a[:j+1] <= pivot and every
// a[j+1:] >= pivot. Runs of equal values split evenly, so slopes that tie
// (integer-valued signals) do not degrade it.
func partition(a []float64) int {
	n := len(a)
	m := n / 2
	// Median of a[0], a[m], a[n-1] to a[0].
	if a[m] < a[0] {
		a[m], a[0] = a[0], a[m]
	}
	if a[n-1] < a[m] {
		a[n-1], a[m] = a[m], a[n-1]
		if a[m] < a[0] {
			a[m], a[0] = a[0], a[m]
		}
	}
	a[0], a[m] = a[m], a[0]
	p := a[0]
	i, j := -1, n
	for {
		for i++; a[i] < p; i++ {
		}
		for j--; a[j] > p; j-- {
		}
		if i >= j {
			return j
		}
		a[i], a[j] = a[j], a[i]
	}
}

func insertionSort(a []float64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		j := i
		for j > 0 && a[j-1] > v {
			a[j] = a[j-1]
			j--
		}
		a[j] = v
	}
}
