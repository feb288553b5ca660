//go:build !linux

package nodeproc

import "syscall"

// nodeSysProcAttr: without Linux's parent-death signal a node process can
// outlive a killed soakd; the resumed run's node then finds its address
// taken until the old one is stopped.
func nodeSysProcAttr() *syscall.SysProcAttr { return nil }
