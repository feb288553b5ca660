package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"syscall"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/offheap"
)

// FDs is the "fds" fault kind: soakd holds open descriptors until only
// `leave` remain under its RLIMIT_NOFILE, so its components meet EMFILE.
// Where that would take more than faults.resource.max_fds descriptors, the
// soft limit is lowered for the fault's duration instead, to what soakd
// has open plus max_fds plus leave. Verified by /proc/self/fd; released
// (and the limit restored) on revert. The open-fds leak signal subtracts
// the held descriptors (package offheap), so they never read as a leak.
func FDs() faults.Spec {
	return faults.Spec{
		Name: "fds",
		Params: []faults.Param{
			{Name: "leave", Doc: fmt.Sprintf("descriptors left free under RLIMIT_NOFILE (default 64, at least faults.resource.min_fds_left, at least %d)", config.MinFDsLeft)},
		},
		Check: func(p map[string]string) error { _, err := parseFDs(p); return err },
		Bounds: func(c *config.Config, p map[string]string) error {
			leave, err := parseFDs(p)
			if err == nil && leave < c.Faults.Resource.MinFDsLeft {
				return faults.BadParam("leave", "%d is below faults.resource.min_fds_left (%d)", leave, c.Faults.Resource.MinFDsLeft)
			}
			return err
		},
		Self: true,
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"leave": strconv.Itoa(32 + rng.IntN(97))}
		},
		New: func(env faults.Env) (faults.Injector, error) {
			return &fdsInjector{log: logger(env), bounds: bounds(env)}, nil
		},
	}
}

func parseFDs(p map[string]string) (int, error) {
	leave := 64
	if s, ok := p["leave"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < config.MinFDsLeft {
			return 0, faults.BadParam("leave", "must be a whole number of at least %d, got %q", config.MinFDsLeft, s)
		}
		leave = n
	}
	return leave, nil
}

type fdsInjector struct {
	log    *slog.Logger
	bounds config.ResourceBounds
	mu     sync.Mutex // one fds fault at a time: each sizes itself on what is open
}

func (in *fdsInjector) Inject(ctx context.Context, target string, params map[string]string) (faults.Revert, error) {
	if target != "self" {
		return nil, fmt.Errorf("fds: target %q: want self (soakd's process)", target)
	}
	leave, err := parseFDs(params)
	if err != nil {
		return nil, err
	}
	leave = max(leave, in.bounds.MinFDsLeft)
	if !in.mu.TryLock() {
		return nil, errors.New("fds: an fds fault is already in force")
	}
	release, err := in.hold(ctx, leave)
	if err != nil {
		in.mu.Unlock()
		return nil, err
	}
	var once sync.Once
	return func(context.Context) error {
		once.Do(func() {
			release()
			in.mu.Unlock()
		})
		return nil
	}, nil
}

// hold opens descriptors until leave remain under the soft limit, lowering
// the limit first when that would take more than max_fds.
func (in *fdsInjector) hold(ctx context.Context, leave int) (release func(), err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil, fmt.Errorf("fds: getrlimit: %w", err)
	}
	open, err := openFDs()
	if err != nil {
		return nil, err
	}
	want := int(lim.Cur) - open - leave
	restore := func() {}
	if maxFDs := in.bounds.MaxFDs; want > maxFDs {
		orig, lowered := lim, lim
		lowered.Cur = uint64(open + maxFDs + leave)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
			return nil, fmt.Errorf("fds: lowering RLIMIT_NOFILE to %d: %w", lowered.Cur, err)
		}
		restore = func() {
			var now syscall.Rlimit
			if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now) == nil && now.Cur == lowered.Cur {
				_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)
			}
		}
		want, lim = maxFDs, lowered
	}
	if want <= 0 {
		restore()
		return nil, fmt.Errorf("fds: %d of RLIMIT_NOFILE %d are open, fewer than %d would be left", open, lim.Cur, leave)
	}
	var held []int
	release = func() {
		for _, fd := range held {
			offheap.AddHeldFDs(-1)
			_ = unix.Close(fd)
		}
		restore()
	}
	base, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		restore()
		return nil, fmt.Errorf("fds: %w", err)
	}
	offheap.AddHeldFDs(1)
	held = append(held, base)
	for len(held) < want {
		fd, err := unix.FcntlInt(uintptr(base), unix.F_DUPFD_CLOEXEC, 0)
		if errors.Is(err, unix.EMFILE) {
			break // others opened some meanwhile: the limit is reached
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("fds: dup: %w", err)
		}
		offheap.AddHeldFDs(1)
		held = append(held, fd)
	}
	if len(held) < want { // give leave back: the fault is "leave remain", not "none"
		for range min(leave, len(held)-1) {
			fd := held[len(held)-1]
			held = held[:len(held)-1]
			offheap.AddHeldFDs(-1)
			_ = unix.Close(fd)
		}
	}
	now, err := openFDs()
	if err != nil {
		release()
		return nil, err
	}
	// Others may have closed descriptors meanwhile (another fault's
	// connections released): hold as many more, a few times at most.
	for range 3 {
		extra := int(lim.Cur) - now - leave
		if extra <= leave+16 {
			break
		}
		for range extra {
			fd, err := unix.FcntlInt(uintptr(base), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				break
			}
			offheap.AddHeldFDs(1)
			held = append(held, fd)
		}
		if now, err = openFDs(); err != nil {
			release()
			return nil, err
		}
	}
	if left := int(lim.Cur) - now; now-open < len(held)*9/10 || left > 2*leave+16 {
		release()
		return nil, fmt.Errorf("fds: holding %d descriptors moved the open count %d → %d (limit %d, %d left), want about %d left",
			len(held), open, now, lim.Cur, left, leave)
	}
	faults.Verified(ctx, fmt.Sprintf("%d descriptors held, %d of %d left", len(held), int(lim.Cur)-now, lim.Cur))
	in.log.Info("fds fault verified", "held", len(held), "open_before", open, "open_after", now, "limit", lim.Cur,
		"left", int(lim.Cur)-now)
	return release, nil
}

// openFDs counts soakd's open descriptors.
func openFDs() (int, error) {
	p, err := procfs.Self()
	if err != nil {
		return 0, fmt.Errorf("fds: %w", err)
	}
	n, err := p.FileDescriptorsLen()
	if err != nil {
		return 0, fmt.Errorf("fds: %w", err)
	}
	return n, nil
}
