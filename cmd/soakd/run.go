package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/daemon"
	"github.com/soakd/soakd/internal/run"
	"github.com/soakd/soakd/internal/telemetry"
)

type runFlags struct {
	config   string
	stateDir string
	listen   string
	duration time.Duration
	seed     uint64
	fresh    bool
	logLevel string
}

func newRunCmd(stderr io.Writer, b built) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the soak daemon in the foreground (what systemd runs)",
		Long: `Run the soak daemon in the foreground until the run's duration is reached
or SIGTERM/SIGINT arrives.

Without --config it runs the embedded default config: every component, mixed
load, random faults, leak checking, for 72h. State lives in --state-dir (else
state_dir from the config, else $STATE_DIRECTORY under systemd, else
./soakd-state). Running again on the same state dir resumes the same run:
same run id, elapsed time continues, incarnation + 1. A completed run is not
restarted; --fresh archives it to <state-dir>/previous/<run-id>/ and starts a
new one.

Flags override the config file. Exit status: 0 on a clean stop or a
completed run, 1 on failure, 2 on bad usage.`,
		Example: `  soakd run
  soakd run --config /etc/soakd/soakd.yaml --state-dir /var/lib/soakd
  soakd run --duration 10m --seed 42 --listen 127.0.0.1:0`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDaemon(cmd, f, stderr, b)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config file (YAML); default: the embedded default config")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory holding the run's state (default: see above)")
	fl.StringVar(&f.listen, "listen", "", "HTTP listen address (default from config, "+telemetry.DefaultListen+")")
	fl.DurationVar(&f.duration, "duration", 0, "run duration, overriding run.duration (e.g. 30m, 72h)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed for a new run, overriding run.seed (a resumed run keeps its own)")
	fl.BoolVar(&f.fresh, "fresh", false, "archive the state dir's previous run and start a new one")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func runDaemon(cmd *cobra.Command, f runFlags, stderr io.Writer, b built) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	cfg, err := loadConfig(f.config, b)
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("duration") {
		if f.duration <= 0 {
			return usageError{errors.New("--duration: must be > 0")}
		}
		cfg.Run.Duration = config.Duration(f.duration)
	}
	if cmd.Flags().Changed("seed") {
		cfg.Run.Seed = f.seed
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if err := cfg.Validate(b.faults); err != nil {
		return configError(f.config, err)
	}

	log := telemetry.NewLogger(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = daemon.Run(ctx, daemon.Options{
		Config:       cfg,
		StateDir:     daemon.ResolveStateDir(f.stateDir, cfg),
		Fresh:        f.fresh,
		Logger:       log,
		Notifier:     run.SystemdNotifier{},
		Components:   b.components,
		Faults:       b.faults,
		FaultBackend: faultBackend(),
		Version:      version,
		Revision:     buildRevision(),
	})
	if daemon.IsCompleted(err) {
		// Not a failure: under systemd, Restart=on-failure must not loop.
		fmt.Fprintf(stderr, "soakd: %v\n", err)
		return nil
	}
	return err
}

// loadConfig reads the file, or the embedded default when path is empty,
// and validates its fault kinds against b's.
func loadConfig(path string, b built) (*config.Config, error) {
	if path == "" {
		cfg := config.Default()
		if err := cfg.Validate(b.faults); err != nil {
			return nil, configError(path, err)
		}
		return cfg, nil
	}
	cfg, err := config.Load(path, b.faults)
	if err != nil {
		return nil, configError(path, err)
	}
	return cfg, nil
}

// configError prints every config problem, one per line, then fails.
func configError(path string, err error) error {
	var probs config.Errors
	if !errors.As(err, &probs) {
		return err
	}
	if path == "" {
		path = "config"
	}
	msg := fmt.Sprintf("%s: %d problem(s):", path, len(probs))
	for _, p := range probs {
		msg += "\n  " + p.String()
	}
	return errors.New(msg)
}
