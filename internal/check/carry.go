package check

import (
	"context"
	"time"

	"github.com/soakd/soakd/internal/components"
)

// The per-key state carried from one window to the next (possible values,
// pending unknown writes, taint), and the check of one key-window that
// updates it. Called only under checkMu.

func (l *Linearizability) stateOf(key string) regState {
	if s, ok := l.states[key]; ok {
		return s
	}
	if l.o.InitialAbsent && !l.evicted {
		return single(absentVal, false)
	}
	return topState(false)
}

func (l *Linearizability) setState(key string, s regState) {
	if s.top && !l.o.InitialAbsent || s.top && l.evicted {
		delete(l.states, key) // "any" is the default
		return
	}
	s.lossy = false
	l.states[key] = s
}

// boundKeys forgets carried state past MaxKeys; a forgotten key's state
// becomes "any value", which is sound.
func (l *Linearizability) boundKeys() {
	if len(l.states) <= l.o.MaxKeys {
		return
	}
	if !l.evicted {
		l.evicted = true
		for k, s := range l.states {
			if s.top {
				delete(l.states, k)
			}
		}
	}
	for k := range l.states {
		if len(l.states) <= l.o.MaxKeys {
			break
		}
		delete(l.states, k)
	}
}

// checkKey checks one key's ops of the window (prev, cut] and carries its
// state forward. It returns "" when there was nothing to check.
func (l *Linearizability) checkKey(ctx context.Context, w keyWindow) (string, *Violation) {
	key, ops, prev, cut := w.key, w.ops, w.prev, w.cut
	init := l.stateOf(key)
	pend := l.pending[key]
	delete(l.pending, key)

	// New pending set: still-live carried ones plus this window's unknown
	// writes (they may still land after the cut).
	var nextPend []pendingOp
	for _, p := range pend {
		if p.expiry.After(cut) {
			nextPend = append(nextPend, p)
		}
	}
	for _, op := range ops {
		if op.Outcome == components.OutcomeUnknown && writes(op) {
			if exp := op.Call.Add(l.o.UnknownTTL); exp.After(cut) {
				nextPend = append(nextPend, pendingOp{op: op, expiry: exp})
			}
		}
	}
	if len(nextPend) > MaxPendingPerKey {
		var until time.Time
		for _, p := range nextPend {
			until = maxTime(until, p.expiry)
		}
		l.taint[key] = maxTime(l.taint[key], until)
		nextPend = nil
	}
	if len(nextPend) > 0 {
		l.pending[key] = nextPend
	}

	if until, tainted := l.taint[key]; tainted && until.After(prev) {
		l.setState(key, topState(false))
		if len(ops) == 0 {
			return "", nil
		}
		return ResultUnknown, nil
	}
	if ctx.Err() != nil {
		l.setState(key, topState(false))
		return ResultUnknown, nil
	}

	h := l.buildHistory(ops, pend, prev, cut)
	if !h.constrained {
		l.setState(key, closure(init, h.maybes))
		return "", nil
	}
	res, end, info := l.runChecks(init, h)
	l.setState(key, end)
	if res != ResultIllegal {
		return res, nil
	}
	v := &Violation{Key: key, WindowStart: prev, WindowEnd: cut, DetectedAt: l.clock.Now()}
	if v.WindowStart.IsZero() {
		v.WindowStart = l.epoch.Add(time.Duration(h.minCall))
	}
	v.Evidence = l.writeEvidence(key, init, h.pending, info)
	l.violations.Inc()
	l.logger.Error("linearizability violation", "key", key, "window_start", v.WindowStart, "window_end", cut, "evidence", v.Evidence)
	if l.o.Event != nil {
		l.o.Event(EventInvariantViolation, map[string]any{
			"component":    l.o.Component,
			"invariant":    checkerLinearizability,
			"key":          key,
			"window_start": v.WindowStart.UTC().Format(time.RFC3339Nano),
			"window_end":   cut.UTC().Format(time.RFC3339Nano),
			"evidence":     v.Evidence,
		})
	}
	return ResultIllegal, v
}
