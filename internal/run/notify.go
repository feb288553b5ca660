package run

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/tick"
)

// Notifier speaks the sd_notify protocol. The run uses it for READY=1,
// STATUS=, WATCHDOG=1, STOPPING=1 and EXTEND_TIMEOUT_USEC=.
type Notifier interface {
	Notify(state string) error
	// WatchdogInterval is systemd's WatchdogSec, or 0 when the watchdog is off.
	WatchdogInterval() time.Duration
}

// SystemdNotifier talks to $NOTIFY_SOCKET; outside systemd every call is a
// cheap no-op.
type SystemdNotifier struct{}

func (SystemdNotifier) Notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

func (SystemdNotifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

type nopNotifier struct{}

func (nopNotifier) Notify(string) error             { return nil }
func (nopNotifier) WatchdogInterval() time.Duration { return 0 }

// watchdog pings systemd every interval/2, but only while the run loop's
// heartbeat is fresh: a wedged loop stops the pings, systemd kills and
// restarts the daemon, and the restart resumes the run.
func watchdog(ctx context.Context, clock clockwork.Clock, interval, maxAge time.Duration, heartbeat func() time.Time, n Notifier, onStale func(age time.Duration)) {
	tick.Every(ctx.Done(), clock, interval/2, func(time.Time) {
		if age := clock.Since(heartbeat()); age <= maxAge {
			_ = n.Notify(daemon.SdNotifyWatchdog)
		} else if onStale != nil {
			onStale(age)
		}
	})
}
