package tick

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEveryTicksUntilDone(t *testing.T) {
	clock := clockwork.NewFakeClock()
	done := make(chan struct{})
	var n atomic.Int32
	var last atomic.Int64
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		Every(done, clock, time.Second, func(now time.Time) { last.Store(now.UnixNano()); n.Add(1) })
	}()
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= 3; i++ {
		clock.Advance(time.Second)
		for n.Load() < i {
			time.Sleep(time.Millisecond)
		}
	}
	if got := time.Unix(0, last.Load()); !got.Equal(clock.Now()) {
		t.Fatalf("fn saw %v, want the tick's time %v", got, clock.Now())
	}
	close(done)
	<-exited
	// The ticker is stopped: no waiter is left on the fake clock.
	if err := clock.BlockUntilContext(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
}
