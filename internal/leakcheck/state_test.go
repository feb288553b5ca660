package leakcheck

import (
	"encoding/json"
	"testing"
	"time"
)

// steps drives f with a string of verdicts, one per interval: 's' suspect,
// 'c' clear, '?' no data; it returns the transitions as a string of the
// same length ('.' none, 'p' pending, 'F' fired, 'R' resolved, 'x'
// cancelled).
func runFSM(f *AlertFSM, start time.Time, verdicts string) string {
	code := map[Transition]byte{None: '.', BecamePending: 'p', Fired: 'F', Resolved: 'R', Cancelled: 'x'}
	out := make([]byte, len(verdicts))
	for i := range verdicts {
		now := start.Add(time.Duration(i) * tInterval)
		var tr Transition
		switch verdicts[i] {
		case 's':
			tr = f.Observe(Evaluation{At: now, Suspect: true})
		case 'c':
			tr = f.Observe(Evaluation{At: now})
		case '?':
			tr = f.Observe(Evaluation{At: now, Insufficient: true})
		}
		out[i] = code[tr]
	}
	return string(out)
}

func TestAlertFSM(t *testing.T) {
	for _, tc := range []struct {
		name          string
		tFor, resolve int
		in, want      string
		end           AlertState
	}{
		{"fires on the For-th consecutive suspect", 3, 0, "sss", "p.F", Firing},
		{"a clear verdict while pending cancels", 3, 0, "sscsss", "p.xp.F", Firing},
		{"no data while pending cancels", 3, 0, "ss?sss", "p.xp.F", Firing},
		{"resolves after ResolveAfter (default For) clear verdicts", 3, 0, "ssscc" + "c", "p.F..R", Inactive},
		{"a suspect verdict while firing resets the clear count", 3, 0, "ssscc" + "scc" + "c", "p.F.....R", Inactive},
		{"no data while firing neither resolves nor resets", 3, 0, "sssc???cc", "p.F.....R", Inactive},
		{"hysteresis: ResolveAfter longer than For", 2, 5, "ss" + "cccc" + "c", "pF....R", Inactive},
		{"For 1 fires at once", 1, 0, "scs", "FRF", Firing},
		{"For below 1 counts as 1", 0, 0, "s", "F", Firing},
		{"clear and no data when inactive do nothing", 3, 0, "cc??", "....", Inactive},
		{"fires again after resolving", 2, 1, "sscss", "pFRpF", Firing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := AlertFSM{For: tc.tFor, ResolveAfter: tc.resolve}
			if got := runFSM(&f, tEpoch, tc.in); got != tc.want || f.State != tc.end {
				t.Fatalf("%q: got %q ending %v, want %q ending %v", tc.in, got, f.State, tc.want, tc.end)
			}
		})
	}
}

func TestAlertFSMTimes(t *testing.T) {
	f := AlertFSM{For: 3}
	at := func(i int) time.Time { return tEpoch.Add(time.Duration(i) * tInterval) }
	runFSM(&f, tEpoch, "cssss")
	if f.State != Firing || !f.ActiveAt.Equal(at(1)) || !f.Since.Equal(at(3)) {
		t.Fatalf("firing: %+v; want active at %v, firing since %v", f, at(1), at(3))
	}
	runFSM(&f, at(5), "ccc")
	if f.State != Inactive || !f.ActiveAt.IsZero() || !f.Since.IsZero() || !f.ResolvedAt.Equal(at(7)) {
		t.Fatalf("resolved: %+v; want zero times and resolved at %v", f, at(7))
	}
	runFSM(&f, at(8), "s")
	if f.State != Pending || !f.ActiveAt.Equal(at(8)) || !f.Since.IsZero() {
		t.Fatalf("pending: %+v", f)
	}
}

// TestAlertFSMCheckpoint: the machine is plain data; a JSON round trip (a
// checkpoint and a restart) continues where it stopped.
func TestAlertFSMCheckpoint(t *testing.T) {
	f := AlertFSM{For: 3}
	runFSM(&f, tEpoch, "sssc")
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var g AlertFSM
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if got := runFSM(&g, tEpoch.Add(time.Hour), "cc"); got != ".R" {
		t.Fatalf("restored machine: %q, want .R (%s)", got, b)
	}
}

func TestStateAndTransitionNames(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		Inactive: "inactive", Pending: "pending", Firing: "firing", AlertState(9): "unknown",
		None: "none", BecamePending: "pending", Fired: "fired", Resolved: "resolved", Cancelled: "cancelled", Transition(9): "unknown",
	} {
		if v.String() != want {
			t.Errorf("%v.String() = %q, want %q", v, v.String(), want)
		}
	}
}
