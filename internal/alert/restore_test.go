package alert_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/alert"
)

// An alert a previous incarnation left firing, restored: Alertmanager gets
// it at once and in every re-send, with the original startsAt; the webhook,
// which was paged when it fired, hears of it again only when it resolves.
func TestDispatcherRestoreIsNotANewPage(t *testing.T) {
	clock := clockwork.NewFakeClock()
	am := newRecordingSink("am", true)
	hook := newRecordingSink("hook", false)
	const every = time.Minute
	d := alert.NewDispatcher(alert.DispatcherOptions{Sinks: []alert.Sink{am, hook}, Clock: clock,
		Logger: (&logBuffer{}).logger(), ResendInterval: every})
	d.Start()
	defer stop(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // am's resend ticker
		t.Fatal(err)
	}

	a := heapLeak("restore")
	startsAt := clock.Now().Add(-3 * time.Hour) // fired in the last incarnation
	a.StartsAt = startsAt
	d.Restore(a)
	if b := am.next(t); len(b) != 1 || b[0].Key() != a.Key() || !b[0].Firing() || !b[0].StartsAt.Equal(startsAt) {
		t.Fatalf("am got %+v, want the restored alert firing since %v", b, startsAt)
	}
	if act := d.Active(); len(act) != 1 || act[0].Key() != a.Key() {
		t.Fatalf("Active = %+v, want the restored alert", act)
	}
	d.Restore(a) // same state again: nothing
	clock.Advance(every)
	if b := am.next(t); len(b) != 1 || b[0].Key() != a.Key() || !b[0].Firing() {
		t.Fatalf("am resend got %+v", b)
	}

	r := a
	r.EndsAt = clock.Now()
	d.Notify(r)
	for _, s := range []*recordingSink{am, hook} {
		if b := s.next(t); len(b) != 1 || b[0].Key() != a.Key() || b[0].Firing() || !b[0].StartsAt.Equal(startsAt) {
			t.Fatalf("%s got %+v, want the resolution with the original startsAt", s.name, b)
		}
	}
	stop(t, d)
	var got []string
	for _, b := range hook.all() {
		for _, x := range b {
			got = append(got, x.Name+":"+x.Status())
		}
	}
	if want := "SoakdHeapLeak:resolved"; strings.Join(got, " ") != want {
		t.Errorf("hook got %q, want only %q", strings.Join(got, " "), want)
	}
	if n := am.alertCount(); n != 3 {
		t.Errorf("am got %d alerts, want 3 (restore, one re-send, resolve)", n)
	}
}
