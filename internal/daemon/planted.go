package daemon

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/soakd/soakd/internal/faults/leak"
	"github.com/soakd/soakd/internal/run"
)

// PlantedLeakEnv plants a leak in soakd that no fault and no canary knows
// of, for end-to-end tests of the alert path (leak.Planted):
// "resource=goroutines,rate=80/min,for=3m". It is an environment variable
// of the tests, on purpose not a config option.
const PlantedLeakEnv = "SOAKD_TEST_PLANTED_LEAK"

// plantedLeak is the service of PlantedLeakEnv, or nil when it is unset.
func plantedLeak(w wiring) (*run.Service, error) {
	v := os.Getenv(PlantedLeakEnv)
	if v == "" {
		return nil, nil
	}
	p, err := leak.ParsePlanted(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PlantedLeakEnv, err)
	}
	var (
		mu   sync.Mutex
		undo func(context.Context) error
	)
	return &run.Service{Name: "planted-leak",
		Start: func(ctx context.Context) error {
			w.log.Warn("planting a leak for a test: soakd will leak on purpose, unknown to its faults", "env", PlantedLeakEnv, "leak", v)
			mu.Lock()
			defer mu.Unlock()
			undo, err = leak.Plant(ctx, p, w.clock, w.log)
			return err
		},
		Stop: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if undo == nil {
				return nil
			}
			return undo(ctx)
		},
	}, nil
}
