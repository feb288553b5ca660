package check

import (
	"slices"
	"time"

	"github.com/soakd/soakd/internal/components"
)

// quiescentCut returns the latest moment t with prev < t ≤ limit at which no
// acknowledged op of one key is in flight (no op with Call ≤ t < Return),
// considering the key's buffered ops. Cutting a key there loses nothing:
// every op returned by t precedes, in real time, every op called after it,
// so the window's exact end-state set is the next window's exact initial
// set. Unknown ops do not count: they are optional with an open end
// whichever window holds them, and stay pending afterwards.
//
// found is false when every moment in (prev, limit] has an op in flight.
func quiescentCut(ops []KVOp, prev, limit time.Time) (t time.Time, found bool) {
	type span struct{ call, ret time.Time }
	spans := make([]span, 0, len(ops))
	for _, op := range ops {
		if op.Outcome == components.OutcomeOK && !op.Call.After(limit) {
			spans = append(spans, span{op.Call, op.Return})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.call.Compare(b.call) })
	// Sweep the merged busy intervals [call, maxRet]; touching ones merge,
	// since an op called at the instant another returns is in flight then.
	var lastFree time.Time // the latest free moment found so far
	haveFree := false
	if len(spans) > 0 {
		// Just before the first busy interval, when that is after prev.
		lastFree, haveFree = spans[0].call.Add(-time.Nanosecond), true
	}
	for i := 0; i < len(spans); {
		end := spans[i].ret
		for i++; i < len(spans) && !spans[i].call.After(end); i++ {
			if spans[i].ret.After(end) {
				end = spans[i].ret
			}
		}
		if end.After(limit) {
			// limit is inside this busy interval (only the last one can
			// reach past it): the latest free moment is the previous
			// interval's end.
			if haveFree && lastFree.After(prev) {
				return lastFree, true
			}
			return time.Time{}, false
		}
		lastFree, haveFree = end, true
	}
	if limit.After(prev) {
		return limit, true
	}
	return time.Time{}, false
}
