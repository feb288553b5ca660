package faults

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
)

// injectionSeer records what InjectionOf says in each Inject.
type injectionSeer struct {
	mu   sync.Mutex
	seen []Injection
}

func (s *injectionSeer) Inject(ctx context.Context, _ string, _ map[string]string) (Revert, error) {
	in, ok := InjectionOf(ctx)
	if !ok {
		in = Injection{ID: "none"}
	}
	s.mu.Lock()
	s.seen = append(s.seen, in)
	s.mu.Unlock()
	return func(context.Context) error { return nil }, nil
}

// TestInjectorSeesItsFault: the runner tells each Inject which planned
// fault it is for, with the time left of its window: all of it on time,
// the rest of it when the fault starts late (a resumed run).
func TestInjectorSeesItsFault(t *testing.T) {
	seer := &injectionSeer{}
	h := newHarness(t, []config.TimedFault{tf(10*time.Second, 5*time.Second, "seer", "a"), tf(20*time.Second, 30*time.Second, "seer", "b")}, 0)
	h.r.o.Kinds = kindsOf(t, fakeSpec("seer", seer))
	h.at(10 * time.Second)
	h.at(27 * time.Second) // the second fault starts 7 s into its window
	want := []Injection{
		{ID: "timeline-0", At: 10 * time.Second, Remaining: 5 * time.Second},
		{ID: "timeline-1", At: 20 * time.Second, Remaining: 23 * time.Second},
	}
	seer.mu.Lock()
	got := seer.seen
	seer.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("injections seen %+v, want %+v", got, want)
	}
	if err := h.r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Outside a runner's injection there is none.
	if in, ok := InjectionOf(context.Background()); ok {
		t.Errorf("InjectionOf(background) = %+v, true", in)
	}
}
