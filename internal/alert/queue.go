package alert

// ring is a fixed-capacity FIFO of alerts that overwrites its oldest entry
// when full. It is not safe for concurrent use.
type ring struct {
	buf  []Alert
	head int // index of the oldest entry
	n    int
}

func newRing(capacity int) ring { return ring{buf: make([]Alert, capacity)} }

// push appends a and reports whether the oldest entry was overwritten.
func (r *ring) push(a Alert) (dropped bool) {
	if r.n == len(r.buf) {
		r.buf[r.head] = a
		r.head = (r.head + 1) % len(r.buf)
		return true
	}
	r.buf[(r.head+r.n)%len(r.buf)] = a
	r.n++
	return false
}

// pop removes and returns up to max of the oldest entries, oldest first.
func (r *ring) pop(max int) []Alert {
	k := min(max, r.n)
	if k == 0 {
		return nil
	}
	out := make([]Alert, k)
	for i := range out {
		out[i] = r.buf[r.head]
		r.buf[r.head] = Alert{} // release the maps
		r.head = (r.head + 1) % len(r.buf)
	}
	r.n -= k
	return out
}

// clear empties the ring and returns how many entries it held.
func (r *ring) clear() int {
	n := r.n
	for r.n > 0 {
		r.buf[r.head] = Alert{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
	return n
}

func (r *ring) len() int { return r.n }
