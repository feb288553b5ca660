package leakcheck

import (
	"math"
	"time"
)

// Sample is one observation of one signal.
type Sample struct {
	T time.Time
	V float64
}

// Ring is a fixed-capacity FIFO of Samples: once full, each Add overwrites the
// oldest sample. Its memory is allocated once, at construction, so a detector
// that keeps a window of samples stays the same size over a 72-hour run.
//
// Samples are expected in non-decreasing time order (the sampler produces
// them that way); Since relies on it. A Ring is not safe for concurrent use.
type Ring struct {
	buf   []Sample
	start int // index of the oldest sample
	n     int
}

// NewRing returns an empty ring holding at most capacity samples
// (at least 1).
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]Sample, max(capacity, 1))}
}

// RingCapacity is the ring size that holds a whole detector window sampled
// every interval: ceil(window/interval) intervals span ceil(window/interval)+1
// sample instants (both ends of [now-window, now] can carry a sample), and one
// more slot absorbs a sample that arrives slightly early because of ticker
// jitter. Non-positive arguments yield the minimum of 2.
func RingCapacity(window, interval time.Duration) int {
	if window <= 0 || interval <= 0 {
		return 2
	}
	return int(math.Ceil(float64(window)/float64(interval))) + 2
}

// Cap returns the fixed capacity.
func (r *Ring) Cap() int { return len(r.buf) }

// Len returns the number of samples held.
func (r *Ring) Len() int { return r.n }

// Add appends s, evicting the oldest sample when the ring is full.
func (r *Ring) Add(s Sample) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = s
		r.n++
		return
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % len(r.buf)
}

// Reset empties the ring, keeping its storage.
func (r *Ring) Reset() { r.start, r.n = 0, 0 }

// at returns the i-th oldest sample, 0 <= i < r.n.
func (r *Ring) at(i int) Sample { return r.buf[(r.start+i)%len(r.buf)] }

// Samples appends every held sample to dst, oldest first, and returns the
// extended slice. Pass dst[:0] of a reused slice to avoid allocating.
func (r *Ring) Samples(dst []Sample) []Sample {
	return r.appendFrom(0, dst)
}

// Last returns the newest sample; ok is false when the ring is empty.
func (r *Ring) Last() (s Sample, ok bool) {
	if r.n == 0 {
		return Sample{}, false
	}
	return r.at(r.n - 1), true
}

// Since appends the samples with T >= t to dst, oldest first.
func (r *Ring) Since(t time.Time, dst []Sample) []Sample {
	// Binary search for the first sample not before t.
	lo, hi := 0, r.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.at(m).T.Before(t) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return r.appendFrom(lo, dst)
}

func (r *Ring) appendFrom(i int, dst []Sample) []Sample {
	if i >= r.n {
		return dst
	}
	// At most two contiguous runs of the backing array.
	first := (r.start + i) % len(r.buf)
	count := r.n - i
	end := first + count
	if end <= len(r.buf) {
		return append(dst, r.buf[first:end]...)
	}
	dst = append(dst, r.buf[first:]...)
	return append(dst, r.buf[:end-len(r.buf)]...)
}
