package resource

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/offheap"
)

func TestFDsParams(t *testing.T) {
	for _, bad := range []map[string]string{{"leave": "0"}, {"leave": "15"}, {"leave": "many"}, {"count": "1"}} {
		if err := FDs().Validate(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := FDs().Bounds(config.Default(), map[string]string{"leave": "20"}); err == nil || !strings.Contains(err.Error(), "min_fds_left") {
		t.Errorf("leave 20 under min_fds_left 32: %v", err)
	}
}

// An fds fault leaves `leave` descriptors under the soft limit (lowered,
// as max_fds is small here), so the next opens meet EMFILE; the leak
// signal's subtraction counts the held ones; the revert gives everything
// back, limit included.
func TestFDsHoldAndRelease(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Faults.Resource.MaxFDs = 200
	in, _ := FDs().New(faults.Env{Config: c})
	revert, err := in.Inject(context.Background(), "self", map[string]string{"leave": "40"})
	if err != nil {
		t.Fatal(err)
	}
	if held := offheap.HeldFDs(); held < 180 || held > 200 {
		t.Errorf("offheap counts %d held descriptors, want about 200", held)
	}
	if _, err := in.Inject(context.Background(), "self", nil); err == nil {
		t.Error("a second fds fault accepted")
	}
	var files []*os.File
	var openErr error
	for range 200 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			openErr = err
			break
		}
		files = append(files, f)
	}
	if !errors.Is(openErr, unix.EMFILE) || len(files) < 20 || len(files) > 60 {
		t.Errorf("under the fault, %d more opens, then %v; want about 40, then EMFILE", len(files), openErr)
	}
	for _, f := range files {
		f.Close()
	}
	if err := revert(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = revert(context.Background())
	var after syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after)
	if after != lim || offheap.HeldFDs() != 0 {
		t.Errorf("after the revert: limit %+v (was %+v), %d held", after, lim, offheap.HeldFDs())
	}
	if _, err := in.Inject(context.Background(), "raft/node-1", nil); err == nil {
		t.Error("a component target accepted")
	}
}
