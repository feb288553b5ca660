package nodeproc

import "syscall"

// nodeSysProcAttr makes a node process die with soakd, even with a kill -9
// of soakd: a resumed run starts its own.
func nodeSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
