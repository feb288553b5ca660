package migration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/components"
)

// InvariantOwnership: a guest runs on at most one host, and only on the
// host its owner record names (none while that host is down).
const InvariantOwnership = "migration_ownership"

// Bounds on ownership operations.
const (
	// ownerAttempt bounds one put, get or cas on the store; the store's
	// client retries within it (a new leader, a redirect).
	ownerAttempt = 2 * time.Second
	// ownerBackoffMax caps the wait between retries.
	ownerBackoffMax = time.Second
	// ownerRetry bounds retrying a cas that definitely did not apply.
	ownerRetry = 5 * time.Second
	// ownerClientBase offsets the client ids of ownership operations in
	// the store's history from the load's workers.
	ownerClientBase = 1 << 20
)

// owner is one guest's ownership record: the host that may run it and how
// many times it changed hands.
type owner struct {
	Host string
	Gen  uint64
}

func (o owner) String() string { return o.Host + ":" + strconv.FormatUint(o.Gen, 10) }

func (o owner) encode() []byte { return []byte(o.String()) }

func parseOwner(b []byte) (owner, error) {
	host, gen, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseUint(gen, 10, 64)
	if !ok || host == "" || err != nil {
		return owner{}, fmt.Errorf("migration: bad owner record %q", b)
	}
	return owner{Host: host, Gen: n}, nil
}

func ownerKey(guest string) string { return "owner/" + guest }

// errStoreDown: the store gave no answer before the context ended.
var errStoreDown = errors.New("ownership store did not answer")

// ownerStore keeps owner records in a key-value component (Raft) through
// its put, get and cas, so the run's linearizability checker sees every
// ownership change with the rest of that component's history.
type ownerStore struct {
	kv components.Component
}

// newOwnerStore checks that kv offers put, get and cas.
func newOwnerStore(kv components.Component) (*ownerStore, error) {
	ops := kv.Ops()
	for _, op := range []string{"put", "get", "cas"} {
		if !slices.Contains(ops, op) {
			return nil, fmt.Errorf("migration: ownership store %s has no %q operation", kv.Name(), op)
		}
	}
	return &ownerStore{kv: kv}, nil
}

func (s *ownerStore) do(ctx context.Context, client int, op components.Op) components.Result {
	ctx, cancel := context.WithTimeout(components.WithClientID(ctx, ownerClientBase+client), ownerAttempt)
	defer cancel()
	return s.kv.Do(ctx, op)
}

// read returns a guest's record, asking until the store answers or ctx
// ends. The store's get goes through its log, so an answer is ordered
// after every write that returned before it was asked.
func (s *ownerStore) read(ctx context.Context, client int, guest string) (o owner, found bool, err error) {
	backoff := 20 * time.Millisecond
	for {
		res := s.do(ctx, client, components.Op{Name: "get", Key: ownerKey(guest)})
		if res.Outcome == components.OutcomeOK {
			if res.Value == nil {
				return owner{}, false, nil
			}
			o, err := parseOwner(res.Value)
			return o, err == nil, err
		}
		if !sleepCtx(ctx, backoff) {
			return owner{}, false, fmt.Errorf("%w (last: %v)", errStoreDown, res.Err)
		}
		backoff = min(2*backoff, ownerBackoffMax)
	}
}

// create writes a guest's first record.
func (s *ownerStore) create(ctx context.Context, client int, guest string, o owner) error {
	backoff := 20 * time.Millisecond
	for {
		res := s.do(ctx, client, components.Op{Name: "put", Key: ownerKey(guest), Value: o.encode()})
		if res.Outcome == components.OutcomeOK {
			return nil
		}
		if !sleepCtx(ctx, backoff) {
			return fmt.Errorf("%w (last: %v)", errStoreDown, res.Err)
		}
		backoff = min(2*backoff, ownerBackoffMax)
	}
}

// flip moves a record from one owner to another by compare-and-swap and
// reports the record it leaves: to when the flip committed, the record it
// found otherwise (with the store's last error when the cas never
// applied). A cas that failed outright (no leader, an enqueue timeout) is
// retried with backoff for up to ownerRetry: the guest waits paused rather
// than give up on a store that is electing a leader. An unknown answer
// (the cas may still commit) is resolved by reads until one answers: a
// read commits after the cas in the log, so it sees the cas if the cas
// ever commits. Only when ctx ends first is the record unknown (err).
func (s *ownerStore) flip(ctx context.Context, client int, guest string, from, to owner) (rec owner, storeErr, err error) {
	var res components.Result
	deadline := time.Now().Add(ownerRetry)
	backoff := 20 * time.Millisecond
	for {
		res = s.do(ctx, client, components.Op{Name: "cas", Key: ownerKey(guest), Expect: from.encode(), Value: to.encode()})
		if res.Outcome != components.OutcomeFailed || time.Now().Add(backoff).After(deadline) || !sleepCtx(ctx, backoff) {
			break
		}
		backoff = min(2*backoff, ownerBackoffMax)
	}
	switch res.Outcome {
	case components.OutcomeOK:
		if res.Swapped {
			return to, nil, nil
		}
		if res.Value == nil {
			return owner{}, nil, fmt.Errorf("migration: %s has no owner record", guest)
		}
		rec, err := parseOwner(res.Value)
		return rec, nil, err
	case components.OutcomeFailed:
		return from, res.Err, nil // definitely not applied
	}
	o, found, err := s.read(ctx, client, guest)
	if err != nil {
		return owner{}, res.Err, fmt.Errorf("migration: resolving an unknown ownership flip of %s: %w", guest, err)
	}
	if !found {
		return owner{}, res.Err, fmt.Errorf("migration: %s has no owner record", guest)
	}
	return o, res.Err, nil
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Ownership is the record a switch-over flips to the destination before
// the destination may resume the guest (Params.Owner; nil: none).
type Ownership interface {
	// Claim flips the record to the destination; nil only once that
	// committed. On an error the guest stays on its source.
	Claim() error
	// Release flips a claimed record back to the source, when the
	// destination did not resume the guest; nil once that committed.
	Release() error
}

// Results of ownership flips, as counted in
// soakd_migration_ownership_flips_total.
const (
	flipCommitted   = "committed"   // claimed for the destination
	flipUnavailable = "unavailable" // the store did not apply it: rolled back
	flipRefused     = "refused"     // the record had changed: rolled back
	flipUnresolved  = "unresolved"  // the answer was lost and the run stopped before a read resolved it
	flipReleased    = "released"    // handed back to the source after the destination did not resume
)

// claim is one migration's ownership flip through the store.
type claim struct {
	store  *ownerStore
	life   context.Context // the component's: a flip outlives its migration's cancellation
	client int
	guest  string
	from   owner
	to     owner
	count  func(result string)
	// final is the record as this migration left it, when known.
	final owner
	known bool
}

func (c *claim) Claim() error {
	rec, storeErr, err := c.store.flip(c.life, c.client, c.guest, c.from, c.to)
	c.final, c.known = rec, err == nil
	switch {
	case err != nil:
		c.count(flipUnresolved)
		return err
	case rec == c.to:
		c.count(flipCommitted)
		return nil
	case rec == c.from:
		c.count(flipUnavailable)
		return fmt.Errorf("ownership store did not commit %s → %s: %v", c.from, c.to, storeErr)
	}
	c.count(flipRefused)
	return fmt.Errorf("owner record of %s is %s, expected %s", c.guest, rec, c.from)
}

func (c *claim) Release() error {
	back := owner{Host: c.from.Host, Gen: c.to.Gen + 1}
	backoff := 20 * time.Millisecond
	for {
		rec, _, err := c.store.flip(c.life, c.client, c.guest, c.to, back)
		c.final, c.known = rec, err == nil
		switch {
		case err != nil:
			c.count(flipUnresolved)
			return err
		case rec == back:
			c.count(flipReleased)
			return nil
		case rec != c.to:
			c.count(flipRefused)
			return fmt.Errorf("owner record of %s moved to %s while it was released", c.guest, rec)
		}
		// Not applied: the guest stays paused until the record is back.
		if !sleepCtx(c.life, backoff) {
			c.count(flipUnresolved)
			return fmt.Errorf("releasing %s: %w", c.guest, errStoreDown)
		}
		backoff = min(2*backoff, ownerBackoffMax)
	}
}
