package fabric_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/fabric/fabrictest"
)

// Tests of the fast path: an unshaped direction of a connection is copied
// with io.Copy (splice) and hands over to the shaped pipeline when a rule
// starts to shape it. The streams here carry a counter (block k holds the
// big-endian words k*blockWords, k*blockWords+1, ...), so a byte lost,
// doubled or moved anywhere fails the check.

const (
	blockSize  = 64 << 10
	blockWords = blockSize / 8
)

var errCorrupt = errors.New("stream corrupted")

// counterStream writes counter blocks over c as fast as the connection
// takes them and reads their echo back, checking every word.
type counterStream struct {
	c    net.Conn
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	sent    []time.Time // when block k's Write began
	recv    []time.Time // when block k was read back whole
	werr    error
	rerr    error // io.EOF after a clean end
	stopped bool
}

func startCounterStream(t *testing.T, c net.Conn) *counterStream {
	t.Helper()
	s := &counterStream{c: c, stop: make(chan struct{})}
	s.wg.Add(2)
	go s.write()
	go s.read()
	t.Cleanup(func() { // unblocks both sides whatever the test did
		s.end()
		_ = c.Close()
		s.wg.Wait()
	})
	return s
}

func fillBlock(buf []byte, k uint64) {
	for i := range uint64(blockWords) {
		binary.BigEndian.PutUint64(buf[8*i:], k*blockWords+i)
	}
}

func checkBlock(buf []byte, k uint64) error {
	for i := range uint64(blockWords) {
		if got, want := binary.BigEndian.Uint64(buf[8*i:]), k*blockWords+i; got != want {
			return fmt.Errorf("%w: word at byte %d is %d, want %d", errCorrupt, (k*blockWords+i)*8, got, want)
		}
	}
	return nil
}

func (s *counterStream) write() {
	defer s.wg.Done()
	buf := make([]byte, blockSize)
	for k := uint64(0); ; k++ {
		select {
		case <-s.stop:
			err := s.c.(interface{ CloseWrite() error }).CloseWrite()
			s.mu.Lock()
			s.werr = err
			s.mu.Unlock()
			return
		default:
		}
		fillBlock(buf, k)
		s.mu.Lock()
		s.sent = append(s.sent, time.Now())
		s.mu.Unlock()
		if _, err := s.c.Write(buf); err != nil {
			s.mu.Lock()
			s.werr = err
			s.sent = s.sent[:len(s.sent)-1]
			s.mu.Unlock()
			return
		}
	}
}

func (s *counterStream) read() {
	defer s.wg.Done()
	buf := make([]byte, blockSize)
	for k := uint64(0); ; k++ {
		_, err := io.ReadFull(s.c, buf)
		now := time.Now()
		if err == nil {
			err = checkBlock(buf, k)
		}
		s.mu.Lock()
		if err != nil {
			s.rerr = err
			s.mu.Unlock()
			return
		}
		s.recv = append(s.recv, now)
		s.mu.Unlock()
	}
}

// end stops the writer after its current block and half-closes.
func (s *counterStream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
}

func (s *counterStream) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recv)
}

// failed fails the test if the reader found a wrong byte or either side
// failed.
func (s *counterStream) failed(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rerr != nil || s.werr != nil {
		t.Fatalf("stream failed: read %v, write %v (%d blocks sent, %d received)", s.rerr, s.werr, len(s.sent), len(s.recv))
	}
}

// wait waits until both sides have ended and returns their errors.
func (s *counterStream) wait(t *testing.T, limit time.Duration) (werr, rerr error) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = s.c.Close()
		<-done
		t.Fatalf("stream still running %v after it should have ended", limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.werr, s.rerr
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFastPathFaultsMidStream runs one long echoed stream over an unfaulted
// link and injects delay, bandwidth and a blackhole in turn while it flows:
// each takes effect within a short bound, the connection goes back to the
// fast path after each revert, and every byte comes back exactly once, in
// order.
func TestFastPathFaultsMidStream(t *testing.T) {
	eachMode(t, testFastPathFaultsMidStream)
}

func testFastPathFaultsMidStream(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	ab := fabric.Links(fabric.Link{From: "a", To: "b"})
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	s := startCounterStream(t, c)
	fast := func(n int) func() bool { return func() bool { return fabric.FastPaths(f) == n } }
	flowing := func(what string) {
		t.Helper()
		from := s.received()
		waitFor(t, 5*time.Second, what, func() bool { s.failed(t); return s.received() >= from+16 })
	}
	waitFor(t, 2*time.Second, "both directions on the fast path", fast(2))
	flowing("stream flowing on the fast path")

	// Delay: every block written 100ms after injection comes back at least
	// the latency later; the reply direction stays on the fast path.
	const latency = 100 * time.Millisecond
	rev, err := f.Delay(ab, latency, 0)
	if err != nil {
		t.Fatal(err)
	}
	injected := time.Now()
	bound := injected.Add(100 * time.Millisecond)
	var late []time.Duration
	waitFor(t, 5*time.Second, "blocks sent after the delay took effect come back", func() bool {
		s.failed(t)
		s.mu.Lock()
		defer s.mu.Unlock()
		late = late[:0]
		for k := range s.recv {
			if !s.sent[k].Before(bound) {
				late = append(late, s.recv[k].Sub(s.sent[k]))
			}
		}
		return len(late) >= 8
	})
	for _, d := range late {
		if d < latency-5*time.Millisecond {
			t.Fatalf("a block sent %v after a %v delay was injected came back in %v", bound.Sub(injected), latency, d)
		}
	}
	if n := fabric.FastPaths(f); n != 1 {
		t.Fatalf("under a delay %d directions on the fast path, want 1 (the replies)", n)
	}
	t.Logf("delay: blocks sent from +100ms came back in %v..%v", late[0], late[len(late)-1])
	fabrictest.MustRevert(t, rev)
	waitFor(t, 5*time.Second, "fast path again after the delay", fast(2))
	flowing("stream flowing after the delay")

	// Bandwidth: after a short grace (what was spliced before the switch
	// arrives at once), the echo comes back at most at the cap.
	const rate = 4 << 20
	rev, err = f.Bandwidth(ab, rate)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	r1, t1 := s.received(), time.Now()
	time.Sleep(time.Second)
	r2, t2 := s.received(), time.Now()
	got := float64(r2-r1) * blockSize / t2.Sub(t1).Seconds()
	t.Logf("bandwidth %d B/s: echo came back at %.0f B/s", rate, got)
	if got > 1.5*rate || r2 == r1 {
		t.Fatalf("under a %d B/s cap the echo came back at %.0f B/s", rate, got)
	}
	if n := fabric.FastPaths(f); n != 0 {
		t.Fatalf("under a bandwidth cap %d directions on the fast path", n)
	}
	s.failed(t)
	fabrictest.MustRevert(t, rev)
	waitFor(t, 5*time.Second, "fast path again after the bandwidth cap", fast(2))
	flowing("stream flowing after the bandwidth cap")

	// Blackhole: nothing comes back once in-flight bytes have landed, and
	// everything held comes back after the revert.
	rev, err = f.Blackhole(fabric.Isolate("b"))
	if err != nil {
		t.Fatal(err)
	}
	// In-flight bytes land first: wait until nothing has arrived for
	// 300 ms (a loaded machine takes longer than an idle one), then
	// nothing may arrive for another 500 ms.
	r1 = s.received()
	for quiet, deadline := time.Now(), time.Now().Add(5*time.Second); time.Since(quiet) < 300*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("blackhole: blocks still arriving 5 s after injection")
		}
		time.Sleep(50 * time.Millisecond)
		if r := s.received(); r != r1 {
			r1, quiet = r, time.Now()
		}
	}
	time.Sleep(500 * time.Millisecond)
	if r2 := s.received(); r2 != r1 {
		t.Fatalf("blackhole delivered %d blocks 500ms after the in-flight ones had landed", r2-r1)
	}
	if n := fabric.FastPaths(f); n != 0 {
		t.Fatalf("in a blackhole %d directions on the fast path", n)
	}
	s.failed(t)
	fabrictest.MustRevert(t, rev)
	flowing("stream flowing after the blackhole")
	waitFor(t, 5*time.Second, "fast path again after the blackhole", fast(2))
	flowing("stream flowing on the fast path at the end")

	s.end()
	werr, rerr := s.wait(t, 10*time.Second)
	if werr != nil || !errors.Is(rerr, io.EOF) {
		t.Fatalf("stream end: write %v, read %v", werr, rerr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recv) != len(s.sent) {
		t.Fatalf("%d blocks sent, %d came back", len(s.sent), len(s.recv))
	}
	t.Logf("%d MiB echoed intact through delay, bandwidth and blackhole", len(s.recv)*blockSize>>20)
}

// TestFastPathCutResetClose kills connections that are streaming on the
// fast path: a cut closes them, a reset resets them, Close ends them; the
// proxy forgets them and what arrived before is intact.
func TestFastPathCutResetClose(t *testing.T) {
	eachMode(t, testFastPathCutResetClose)
}

func testFastPathCutResetClose(t *testing.T, opts ...fabric.Option) {
	ab := fabric.Links(fabric.Link{From: "a", To: "b"})
	for _, tc := range []struct {
		name  string
		fault func(f *fabric.Fabric) error
		reset bool
	}{
		{name: "cut", fault: func(f *fabric.Fabric) error { _, err := f.Cut(ab); return err }},
		{name: "reset", fault: func(f *fabric.Fabric) error { _, err := f.Reset(ab); return err }, reset: true},
		{name: "close", fault: func(f *fabric.Fabric) error { return f.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := fabrictest.NewEcho(t)
			f := fabrictest.New(t, opts...)
			s := startCounterStream(t, fabrictest.Dial(t, f, "a", "b", e.Addr()))
			waitFor(t, 2*time.Second, "both directions on the fast path", func() bool { return fabric.FastPaths(f) == 2 })
			waitFor(t, 5*time.Second, "stream flowing", func() bool { s.failed(t); return s.received() >= 16 })
			if err := tc.fault(f); err != nil {
				t.Fatal(err)
			}
			werr, rerr := s.wait(t, 2*time.Second)
			t.Logf("after %s: write %v, read %v", tc.name, werr, rerr)
			for _, err := range []error{werr, rerr} {
				if err == nil || fabrictest.IsTimeout(err) || errors.Is(err, errCorrupt) {
					t.Fatalf("after %s: write %v, read %v", tc.name, werr, rerr)
				}
			}
			if tc.reset && !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(rerr, syscall.ECONNRESET) {
				t.Fatalf("reset: neither side saw a reset: write %v, read %v", werr, rerr)
			}
			waitFor(t, time.Second, "proxy forgets the connection", func() bool { return fabric.Conns(f) == 0 })
		})
	}
}

// TestFastPathLoss: a loss rule silences an open fast-path connection that
// its draw hits, and a connection it spares stays on the fast path.
func TestFastPathLoss(t *testing.T) {
	eachMode(t, testFastPathLoss)
}

func testFastPathLoss(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	ab := fabric.Links(fabric.Link{From: "a", To: "b"})
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	fabrictest.MedianRTT(t, c)
	waitFor(t, 2*time.Second, "both directions on the fast path", func() bool { return fabric.FastPaths(f) == 2 })

	rev, err := f.Loss(ab, 0)
	if err != nil {
		t.Fatal(err)
	}
	fabrictest.MedianRTT(t, c)
	if n := fabric.FastPaths(f); n != 2 {
		t.Fatalf("a connection spared by loss 0: %d directions on the fast path, want 2", n)
	}
	fabrictest.MustRevert(t, rev)

	rev, err = f.Loss(ab, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fabrictest.RoundTrip(c, 1, 300*time.Millisecond); !fabrictest.IsTimeout(err) {
		t.Fatalf("round trip over a connection silenced by loss 1: %v", err)
	}
	fabrictest.MustRevert(t, rev)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil { // the byte held during the loss
		t.Fatalf("held byte after the loss was reverted: %v", err)
	}
	fabrictest.MedianRTT(t, c)
	waitFor(t, 2*time.Second, "fast path again after the loss", func() bool { return fabric.FastPaths(f) == 2 })
}

// TestRuleInForceOnReturn: when a fault's injection returns, no fast-path
// copy it shapes is still running, so nothing written afterwards slips
// through unshaped.
func TestRuleInForceOnReturn(t *testing.T) {
	eachMode(t, testRuleInForceOnReturn)
}

func testRuleInForceOnReturn(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	for i := range 50 {
		c := fabrictest.Dial(t, f, "a", "b", e.Addr())
		fabrictest.MedianRTT(t, c) // both directions on the fast path
		if n := fabric.FastPaths(f); n == 0 {
			t.Fatal("no connection on the fast path")
		}
		rev, err := f.Blackhole(fabric.Isolate("b"))
		if err != nil {
			t.Fatal(err)
		}
		if n := fabric.FastPaths(f); n != 0 {
			t.Fatalf("try %d: %d directions still on the fast path when Blackhole returned", i, n)
		}
		if err := rev(context.Background()); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}
