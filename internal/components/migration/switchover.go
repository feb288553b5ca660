package migration

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// Invariants a migration checks, as named in soakd_invariant_violations_total.
const (
	// InvariantPages: what the destination holds differs from what was
	// sent, or breaks the guest's one-edge counters (a corrupted frame or
	// delta). Caught before the guest resumes: it stays on its source.
	InvariantPages = "migration_pages"
	// InvariantSourceFrozen: the source's memory at pause differs from
	// what was sent (the dirty bitmap missed a write). Caught after the
	// guest resumed on the destination, from the frozen source copy.
	InvariantSourceFrozen = "migration_dirty_tracking"
)

// maxMismatch is how many differing pages a report lists.
const maxMismatch = 16

// resolveFunc asks the destination, out of band, whether migration id
// resumed there; when it did not, the destination must never resume it.
type resolveFunc func(id uint64) (resumed bool)

// switchOver sends the paused guest's last pages and state, has the
// destination verify them, claims the guest's owner record for the
// destination (Params.Owner), and commits. Any failure before the commit
// resumes the guest on the source; a lost answer to the commit is resolved
// out of band, and when the destination did not resume, the record is
// released back to the source before the guest resumes there.
func (o *outgoing) switchOver(ctx context.Context, cpu *CPUState, resolve resolveFunc, start time.Time) {
	pausedAt := time.Now()
	pages := o.g.dirty.collect(nil)
	r, err := o.round(ctx, len(o.rep.Rounds), pages)
	if err != nil {
		o.fail(cpu, fmt.Errorf("migration: final round: %w", err))
		return
	}
	r.Took = time.Since(pausedAt)
	o.rep.Rounds = append(o.rep.Rounds, r)
	sent := o.sent.u64s()
	for s, fw := range o.fws {
		e := end{}
		if s == 0 {
			e.CPU, e.SrcHash, e.PausedAt = cpu, listHash(sent), pausedAt
		}
		o.deadline(o.conns[s])
		if err := fw.control(frameEnd, e); err != nil {
			o.fail(cpu, fmt.Errorf("migration: end of stream %d: %w", s, err))
			return
		}
	}
	fr := o.frs[0]
	var v verdict
	o.deadline(o.conns[0])
	if err := fr.control(frameVerdict, &v); err != nil {
		o.fail(cpu, fmt.Errorf("migration: verdict: %w", err))
		return
	}
	if !v.OK {
		o.rep.Invariant = InvariantPages
		if typ, _, payload, err := fr.next(); err == nil && typ == frameHashes && len(payload) == len(sent)*8 {
			dst := make([]uint64, len(sent))
			for i := range dst {
				dst[i] = binary.LittleEndian.Uint64(payload[i*8:])
			}
			o.rep.Mismatch = diffPages(sent, dst, maxMismatch)
		}
		o.fail(cpu, fmt.Errorf("migration: destination failed verification: %s", v.Problem))
		return
	}
	if o.p.Owner != nil && !o.p.resumeBeforeClaim {
		t0 := time.Now()
		err := o.p.Owner.Claim()
		o.rep.Ownership = time.Since(t0)
		if err != nil {
			o.fail(cpu, fmt.Errorf("migration: ownership: %w", err))
			return
		}
	}
	o.deadline(o.conns[0])
	var res resumed
	err = o.fws[0].control(frameCommit, struct{}{})
	if err == nil {
		err = fr.control(frameResumed, &res)
	}
	if err != nil {
		// The commit may or may not have landed: ask out of band.
		o.rep.Outcome, o.rep.Err = OutcomeUnknown, fmt.Errorf("migration: commit: %w", err)
		if !resolve(o.id) {
			if o.p.Owner != nil {
				if err := o.p.Owner.Release(); err != nil {
					o.rep.Err = fmt.Errorf("%w; ownership: %w", o.rep.Err, err)
				}
			}
			o.rollback(cpu)
			return
		}
		res.At = time.Now()
	} else {
		o.rep.Outcome = OutcomeOK
	}
	if o.p.Owner != nil && o.p.resumeBeforeClaim {
		// The planted bug: the destination already runs the guest, and
		// a failed claim "rolls back" to the source as well.
		if err := o.p.Owner.Claim(); err != nil {
			o.fail(cpu, fmt.Errorf("migration: ownership: %w", err))
			return
		}
	}
	o.rep.moved = true
	o.rep.Downtime = res.At.Sub(pausedAt)
	o.rep.HeartbeatGap = res.Gap
	o.rep.Total = res.At.Sub(start)
	t0 := time.Now()
	o.verifyFrozen(sent)
	o.rep.Verify = time.Since(t0)
}

// fail rolls back after a failure before the commit.
func (o *outgoing) fail(cpu *CPUState, err error) {
	o.rollback(cpu)
	o.rep.Outcome, o.rep.Err = OutcomeFailed, err
}

// verifyFrozen hashes the source's memory, frozen since the pause, and
// compares it with what was sent (and verified at the destination).
func (o *outgoing) verifyFrozen(sent []uint64) {
	full, err := newRegion(len(sent) * 8)
	if err != nil {
		return
	}
	defer full.free()
	h := full.u64s()[:len(sent)]
	hashAll(o.g.mem, h)
	if diff := diffPages(h, sent, maxMismatch); len(diff) > 0 {
		o.rep.Invariant, o.rep.Mismatch = InvariantSourceFrozen, diff
	}
}
