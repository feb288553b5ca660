package pbftcheck

import (
	"fmt"
	"time"
)

// Recovery is what the checker measured after one fault window closed.
type Recovery struct {
	// FaultEnded is the time FaultEnded was called; zero before the first.
	FaultEnded time.Time
	// Pending is how many requests were pending (issued, not yet both
	// executed by a correct replica and accepted) at FaultEnded.
	Pending int
	// Commit is FaultEnded to the first execution by a correct replica,
	// valid if Committed.
	Commit    time.Duration
	Committed bool
	// Drain is FaultEnded to the moment the last of Pending finished
	// (zero if none was pending), valid if Drained.
	Drain   time.Duration
	Drained bool
	// CommitMissed, DrainMissed: the T1, T2 deadlines were missed (a
	// pbft_liveness violation each).
	CommitMissed, DrainMissed bool
	// Lost counts pending requests evicted (MaxPending) before they
	// finished: Drain leaves them out.
	Lost int
	// Open: still being measured. Aborted: a new fault started (or
	// FaultEnded was called again) first.
	Open, Aborted bool
}

// episode is the recovery after one FaultEnded.
type episode struct {
	id    uint64
	ended time.Time
	// Commit: armed at once if requests were pending, else at the first
	// Issued after the fault ended; commitBy is the deadline.
	armed, committed, commitMissed bool
	commitBy, commitAt             time.Time
	// Drain.
	pending, outstanding, lost int
	drainMissed                bool
	drainAt                    time.Time
}

// FaultStarted records that a fault window opened at now: the recovery
// being measured (if any) is evaluated at now and closed, aborted if
// incomplete. Deadlines do not run during a fault.
func (c *Checker) FaultStarted(now time.Time) []Violation {
	c.tick(now)
	c.closeEpisode(true)
	return c.flush()
}

// FaultEnded records that a fault window closed at now and starts the
// bounded-liveness deadlines: a commit by a correct replica within T1,
// and every request pending now finished (executed by a correct replica
// and accepted by its client) within T2.
func (c *Checker) FaultEnded(now time.Time) []Violation {
	c.tick(now)
	c.closeEpisode(true)
	c.episodes++
	ep := &episode{id: c.episodes, ended: now}
	for _, e := range c.reqs {
		if !e.finished {
			e.episode = ep.id
			ep.pending++
		}
	}
	ep.outstanding = ep.pending
	if ep.pending > 0 {
		ep.armed, ep.commitBy = true, now.Add(c.o.T1)
	} else {
		ep.drainAt = now
	}
	c.ep = ep
	return c.flush()
}

// Tick evaluates the liveness deadlines at now. Every call that takes a
// time does too; Tick is for the moments nothing else happens.
func (c *Checker) Tick(now time.Time) []Violation {
	c.tick(now)
	return c.flush()
}

// LastRecovery is the recovery being measured, or else the last one.
func (c *Checker) LastRecovery() Recovery {
	if c.ep != nil {
		return c.recovery(c.ep, true, false)
	}
	return c.last
}

func (c *Checker) tick(now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
	ep := c.ep
	if ep == nil {
		return
	}
	if c.o.T1 > 0 && ep.armed && !ep.committed && !ep.commitMissed && now.After(ep.commitBy) {
		ep.commitMissed = true
		c.violate(Violation{
			Invariant: InvLiveness, At: now, FaultEnded: ep.ended,
			Detail: fmt.Sprintf("no commit by a correct replica %v after the fault ended (T1 %v)", ep.commitBy.Sub(ep.ended), c.o.T1),
		})
	}
	if c.o.T2 > 0 && ep.outstanding > 0 && !ep.drainMissed && now.After(ep.ended.Add(c.o.T2)) {
		ep.drainMissed = true
		c.violate(Violation{
			Invariant: InvLiveness, At: now, FaultEnded: ep.ended, Pending: ep.outstanding,
			Detail: fmt.Sprintf("%d of %d requests pending when the fault ended not finished after T2 %v", ep.outstanding, ep.pending, c.o.T2),
		})
	}
}

// finish marks e executed by a correct replica and accepted at now.
func (c *Checker) finish(now time.Time, e *reqRec) {
	e.finished = true
	if ep := c.ep; ep != nil && e.episode == ep.id {
		ep.outstanding--
		if ep.outstanding == 0 {
			ep.drainAt = now
		}
	}
}

func (c *Checker) closeEpisodeIfDone() {
	if ep := c.ep; ep != nil && ep.committed && ep.outstanding == 0 {
		c.closeEpisode(false)
	}
}

func (c *Checker) closeEpisode(aborted bool) {
	if c.ep == nil {
		return
	}
	c.last = c.recovery(c.ep, false, aborted && !(c.ep.committed && c.ep.outstanding == 0))
	c.ep = nil
}

func (c *Checker) recovery(ep *episode, open, aborted bool) Recovery {
	r := Recovery{
		FaultEnded: ep.ended, Pending: ep.pending, Committed: ep.committed,
		CommitMissed: ep.commitMissed, DrainMissed: ep.drainMissed, Lost: ep.lost, Open: open, Aborted: aborted,
	}
	if ep.committed {
		r.Commit = ep.commitAt.Sub(ep.ended)
	}
	if ep.outstanding == 0 {
		r.Drained, r.Drain = true, ep.drainAt.Sub(ep.ended)
	}
	return r
}
