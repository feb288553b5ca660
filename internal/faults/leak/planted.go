package leak

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/faults"
)

// Planted is a leak planted for an end-to-end test of the alert path,
// outside any fault plan: a real leak no fault and no canary knows of, as
// soakd would see one in the system it soaks. It is written as the leak
// fault's parameters and, optionally, how long it lasts:
// "resource=goroutines,rate=80/min,for=3m".
type Planted struct {
	Params map[string]string
	For    time.Duration // 0: until undone
}

// ParsePlanted reads a planted leak; the error names the bad part.
func ParsePlanted(v string) (Planted, error) {
	p := Planted{Params: map[string]string{}}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return p, fmt.Errorf("%q is not key=value", kv)
		}
		if k == "for" {
			d, err := time.ParseDuration(val)
			if err != nil {
				return p, fmt.Errorf("for=%q: %w", val, err)
			}
			p.For = d
			continue
		}
		p.Params[k] = val
	}
	if _, err := Describe(p.Params); err != nil {
		return p, err
	}
	return p, nil
}

// Plant starts leaking in this process on clock. undo stops it and frees
// what leaked; it may be called more than once, and is called by itself
// after p.For.
func Plant(ctx context.Context, p Planted, clock clockwork.Clock, log *slog.Logger) (undo func(context.Context) error, err error) {
	inj, err := Spec().New(faults.Env{Clock: clock, Logger: log})
	if err != nil {
		return nil, err
	}
	revert, err := inj.Inject(ctx, "", p.Params)
	if err != nil {
		return nil, err
	}
	var (
		mu    sync.Mutex
		timer clockwork.Timer
	)
	undo = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		if revert == nil {
			return nil
		}
		r := revert
		revert = nil
		return r(ctx)
	}
	if p.For > 0 {
		mu.Lock()
		timer = clock.AfterFunc(p.For, func() { _ = undo(context.Background()) })
		mu.Unlock()
	}
	return undo, nil
}
