package fabric

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// queued blocks until src has bytes to read (it returns how many), has
// ended or failed (it returns 0 and the copy finds out which), or src's
// read deadline passes (the error). It holds no splice pipe while it waits,
// so an idle connection on the fast path costs no descriptors beyond its
// sockets, and the copy that follows takes what is queued instead of
// blocking inside splice with a pipe checked out.
func queued(src net.Conn) (int, error) {
	sc, ok := src.(syscall.Conn)
	if !ok {
		return 0, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, nil
	}
	n := 0
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		if inq, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil && inq > 0 {
			n = inq
			return true
		}
		for { // nothing queued: idle, or the end of the stream?
			k, _, err := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false // idle: wait until readable
			case err == nil && k > 0: // bytes that just arrived
				if inq, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
					n = inq
				}
			}
			return true // bytes, EOF or an error
		}
	})
	return n, err
}
