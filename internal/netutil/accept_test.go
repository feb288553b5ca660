package netutil

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// flaky fails its first Accepts with EMFILE, as a listener does while the
// process has no descriptor left, then accepts from the real listener.
type flaky struct {
	net.Listener
	fails int
}

func (f *flaky) Accept() (net.Conn, error) {
	if f.fails > 0 {
		f.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

// Out of descriptors, Accept retries and then serves; once the listener is
// closed it returns net.ErrClosed.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{Listener: ln, fails: 3}
	dialed := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	var retried []error
	c, err := Accept(f, func(err error) { retried = append(retried, err) })
	if err != nil {
		t.Fatalf("Accept after EMFILE: %v", err)
	}
	c.Close()
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	if len(retried) != 3 || !errors.Is(retried[0], syscall.EMFILE) {
		t.Errorf("retried %v, want 3 EMFILE", retried)
	}
	ln.Close()
	if _, err := Accept(f, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}
