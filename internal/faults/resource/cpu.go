package resource

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"time"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// cpuVerifyAfter is how long Inject lets the burner run before checking
// its CPU time: it must have used at least a quarter of what it asked for
// (the machine is shared; a burner starved of more than that is not the
// fault the plan says). On a busy machine it keeps measuring, up to
// cpuVerifyWithin, before it gives up.
const (
	cpuVerifyAfter  = 500 * time.Millisecond
	cpuVerifyWithin = 3 * time.Second
	cpuVerifyShare  = 0.25
)

// CPU is the "cpu" fault kind: a child process burns `cores` cores at
// `load` percent for the fault's duration, on soakd's machine (target
// self).
func CPU() faults.Spec {
	return faults.Spec{
		Name: "cpu",
		Params: []faults.Param{
			{Name: "cores", Doc: fmt.Sprintf("cores to burn, 1..%d (default 1)", runtime.NumCPU())},
			{Name: "load", Doc: "share of each core (default 100%)"},
		},
		Check: func(p map[string]string) error { _, _, err := parseCPU(p); return err },
		Self:  true,
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"cores": "1", "load": strconv.Itoa(50+rng.IntN(51)) + "%"}
		},
		New: func(env faults.Env) (faults.Injector, error) {
			log := env.Logger
			if log == nil {
				log = slog.New(slog.DiscardHandler)
			}
			return &cpuInjector{log: log}, nil
		},
	}
}

func parseCPU(p map[string]string) (cores int, load float64, err error) {
	cores, load = 1, 1
	if s, ok := p["cores"]; ok {
		if cores, err = strconv.Atoi(s); err != nil || cores < 1 || cores > runtime.NumCPU() {
			return 0, 0, faults.BadParam("cores", "must be a whole number in 1..%d (this machine's cores), got %q", runtime.NumCPU(), s)
		}
	}
	if s, ok := p["load"]; ok {
		v, perr := config.ParsePercent(s)
		if perr != nil || v.Fraction() <= 0 || v.Fraction() > 1 {
			return 0, 0, faults.BadParam("load", "must be a share in (0%%, 100%%], got %q", s)
		}
		load = v.Fraction()
	}
	return cores, load, nil
}

type cpuInjector struct {
	log *slog.Logger
	pid int // the last burner started, for the journal's log line and tests
}

// Inject starts the burner and checks it burns; the revert kills it.
func (in *cpuInjector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	if target != "self" {
		return nil, fmt.Errorf("cpu: target %q: want self (soakd's machine)", target)
	}
	cores, load, err := parseCPU(params)
	if err != nil {
		return nil, err
	}
	c, err := startChild("cpu", "--cores", strconv.Itoa(cores), "--load", strconv.FormatFloat(load*100, 'f', -1, 64))
	if err != nil {
		return nil, err
	}
	// Check at cpuVerifyAfter, and on a busy machine keep checking up to
	// cpuVerifyWithin: over a longer span a burner that gets its fair
	// share shows it, while one starved for the whole span does not.
	start := time.Now()
	var used, want time.Duration
	for {
		select {
		case <-time.After(cpuVerifyAfter / 2):
		case <-ctx.Done():
			_ = c.stop()
			return nil, ctx.Err()
		case <-c.done:
			err := c.err
			return nil, fmt.Errorf("cpu: burner exited at once: %v", err)
		}
		elapsed := time.Since(start)
		var err error
		used, err = c.cpuTime()
		want = time.Duration(cpuVerifyShare * float64(elapsed) * float64(cores) * load)
		switch {
		case err != nil:
			_ = c.stop()
			return nil, fmt.Errorf("cpu: burner's CPU time: %w", err)
		case elapsed >= cpuVerifyAfter && used >= want:
		case elapsed < cpuVerifyWithin:
			continue
		default:
			_ = c.stop()
			return nil, fmt.Errorf("cpu: burner used %v of CPU in %v, want at least %v (the machine is saturated)",
				used, elapsed.Round(time.Millisecond), want)
		}
		break
	}
	in.pid = c.cmd.Process.Pid
	faults.Verified(ctx, fmt.Sprintf("burner used %v of CPU in %v", used, time.Since(start).Round(time.Millisecond)))
	in.log.Info("cpu fault verified", "pid", c.cmd.Process.Pid, "cores", cores, "load", load, "cpu_used", used, "in", time.Since(start).Round(time.Millisecond))
	return func(context.Context) error { return c.stop() }, nil
}
