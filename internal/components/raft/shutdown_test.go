package raft

import (
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// TestApplyFutureGivesUpAtShutdown: bindShutdown reaches the Apply
// future's ShutdownCh in this hashicorp/raft version, whose Error returns
// ErrRaftShutdown once that channel closes. If a new version moves the
// field, this fails rather than the waiters leaking again.
func TestApplyFutureGivesUpAtShutdown(t *testing.T) {
	c, _ := testCluster(t, 3, nil, defaultOptions())
	inst := c.leader("")
	if inst == nil {
		t.Fatal("no leader")
	}
	f := inst.raft.Apply([]byte("not a command"), time.Second)
	stopped := make(chan struct{})
	bindShutdown(f, stopped)
	v := reflect.ValueOf(f).Elem()
	sf, ok := v.Type().FieldByName("ShutdownCh")
	if !ok {
		t.Fatal("hashicorp/raft's Apply future has no ShutdownCh: bindShutdown is a no-op")
	}
	got := *(*chan struct{})(unsafe.Pointer(v.FieldByIndex(sf.Index).UnsafeAddr()))
	if got != stopped {
		t.Fatal("bindShutdown did not set the future's ShutdownCh")
	}
	_ = f.Error() // this one resolves normally (the FSM rejects the command)
}
