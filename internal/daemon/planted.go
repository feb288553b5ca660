package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/faults/leak"
	"github.com/soakd/soakd/internal/run"
)

// PlantedLeakEnv plants a leak in soakd that no fault and no canary knows
// of, for end-to-end tests of the alert path: a real leak, as soakd would
// see one in the system it soaks. Its value is the leak's parameters and,
// optionally, how long it lasts: "resource=goroutines,rate=80/min,for=3m".
// It is an environment variable of the tests, on purpose not a config
// option.
const PlantedLeakEnv = "SOAKD_TEST_PLANTED_LEAK"

// plantedLeak is the service of PlantedLeakEnv, or nil when it is unset.
func plantedLeak(w wiring) (*run.Service, error) {
	v := os.Getenv(PlantedLeakEnv)
	if v == "" {
		return nil, nil
	}
	params := map[string]string{}
	var lasts time.Duration
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not key=value", PlantedLeakEnv, kv)
		}
		if k == "for" {
			d, err := time.ParseDuration(val)
			if err != nil {
				return nil, fmt.Errorf("%s: for=%q: %w", PlantedLeakEnv, val, err)
			}
			lasts = d
			continue
		}
		params[k] = val
	}
	if _, err := leak.Describe(params); err != nil {
		return nil, fmt.Errorf("%s: %w", PlantedLeakEnv, err)
	}
	inj, err := leak.Spec().New(faults.Env{Clock: w.clock, Logger: w.log})
	if err != nil {
		return nil, err
	}
	var (
		mu     sync.Mutex
		revert faults.Revert
		timer  clockwork.Timer
	)
	undo := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		if revert == nil {
			return nil
		}
		return revert(ctx)
	}
	return &run.Service{Name: "planted-leak",
		Start: func(ctx context.Context) error {
			w.log.Warn("planting a leak for a test: soakd will leak on purpose, unknown to its faults", "env", PlantedLeakEnv, "leak", v)
			mu.Lock()
			defer mu.Unlock()
			if revert, err = inj.Inject(ctx, "", params); err != nil {
				return err
			}
			if lasts > 0 {
				timer = w.clock.AfterFunc(lasts, func() { _ = undo(context.Background()) })
			}
			return nil
		},
		Stop: undo,
	}, nil
}
