package offheap

import "sync/atomic"

var heldFDs atomic.Int64

// AddHeldFDs adds delta to the descriptors faults hold: +1 right after
// opening one, -1 right before closing it, so a concurrent reading is off
// by at most the descriptors in between.
func AddHeldFDs(delta int) { heldFDs.Add(int64(delta)) }

// HeldFDs is how many descriptors faults hold now.
func HeldFDs() int { return int(heldFDs.Load()) }
