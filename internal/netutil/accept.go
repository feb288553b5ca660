package netutil

import (
	"errors"
	"net"
	"time"
)

// Accept waits for the next connection on ln. An error other than the
// listener being closed (EMFILE, ENFILE, ECONNABORTED, ...) is retried
// after a backoff of 5 ms doubling to 1 s, as net/http's server does: an
// accept loop that returned on it would stop serving for good, and a node
// would go deaf after one moment without descriptors. It returns an error
// only once ln is closed (errors.Is(err, net.ErrClosed)). onRetry, if not
// nil, sees each retried error.
func Accept(ln net.Listener, onRetry func(error)) (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if onRetry != nil {
			onRetry(err)
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		time.Sleep(backoff)
	}
}
