package migration

import (
	"context"
	"fmt"
	"net"

	"github.com/soakd/soakd/internal/components"
)

// hostNode is a host as the Cluster drives it: a Host in this process
// (localHost) or a `soakd node --component migration` process (procHost,
// components.migration.mode processes).
type hostNode interface {
	Name() string
	// installGuest creates guest i of generation gen on the host while it
	// is down (start starts it) and returns its size in bytes.
	installGuest(spec GuestSpec) error
	start() error
	// stop takes the host down as a crash: its guests are lost.
	stop()
	// close stops it for good.
	close() error
	Up() bool
	// Addr is where it takes incoming migrations ("" while down).
	Addr() string
	// snapshot is whether it is up and the guests it runs, at once.
	snapshot() (up bool, guests []string)
	// migrateOut runs migration mv of a guest on this host to dst with p,
	// and frees the guest here when it moved.
	migrateOut(ctx context.Context, mv move, p Params, dst hostNode, progress Progress) Report
	// resolve answers, out of band, whether incoming migration id resumed
	// here.
	resolve(id uint64) bool
}

// localHost is a Host in this process.
type localHost struct {
	*Host
	dial components.Dialer
}

var _ hostNode = (*localHost)(nil)

func (h *localHost) Name() string { return h.ID }

func (h *localHost) installGuest(spec GuestSpec) error {
	g, err := spec.build(h.clock)
	if err != nil {
		return err
	}
	if err := h.install(g); err != nil {
		_ = g.free()
		return err
	}
	return nil
}

func (h *localHost) migrateOut(ctx context.Context, mv move, p Params, dst hostNode, progress Progress) Report {
	g, ok := h.guest(mv.guest)
	if !ok {
		return Report{ID: mv.id, Outcome: OutcomeFailed, Err: fmt.Errorf("migration: %s is not on %s", mv.guest, h.ID)}
	}
	mctx, done, ok := h.beginOutgoing(ctx, mv.id)
	if !ok {
		return Report{ID: mv.id, Outcome: OutcomeFailed, Err: fmt.Errorf("migration: %s is down", h.ID)}
	}
	defer done()
	dial := func(ctx context.Context, stream int) (net.Conn, error) {
		addr := dst.Addr()
		if addr == "" {
			return nil, fmt.Errorf("%s is down", dst.Name())
		}
		return h.dial(ctx, h.ID, dst.Name(), addr)
	}
	rep := migrate(mctx, mv.id, g, p, dial, dst.resolve, progress)
	if rep.Moved() {
		if err := h.release(mv.guest); err != nil {
			h.log.Warn("freeing a migrated guest's source memory", "guest", mv.guest, "err", err)
		}
	}
	return rep
}
