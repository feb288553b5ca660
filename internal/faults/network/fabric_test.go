package network

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer is a real TCP echo on loopback.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func newEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, conns: map[net.Conn]bool{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = true
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for c := range e.conns {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

func newFabric(t *testing.T) *Fabric {
	t.Helper()
	f := New(slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

func dial(t *testing.T, f *Fabric, from, to, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := f.Dialer()(ctx, from, to, addr)
	if err != nil {
		t.Fatalf("dial %s->%s: %v", from, to, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends n bytes and reads them back within limit.
func roundTrip(c net.Conn, n int, limit time.Duration) (time.Duration, error) {
	msg := bytes.Repeat([]byte{'x'}, n)
	_ = c.SetDeadline(time.Now().Add(limit))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, n)
	_, err := io.ReadFull(c, got)
	d := time.Since(start)
	if werr := <-errc; err == nil {
		err = werr
	}
	return d, err
}

// medianRTT warms the connection up, then returns the median of 9 one-byte
// round trips.
func medianRTT(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	for range 3 {
		if _, err := roundTrip(c, 1, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var ds []time.Duration
	for range 9 {
		d, err := roundTrip(c, 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func mustRevert(t *testing.T, r func(context.Context) error) {
	t.Helper()
	for range 2 { // idempotent
		if err := r(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEchoAndOneProxyPerLink(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	for range 3 {
		c := dial(t, f, "a", "b", e.addr())
		if _, err := roundTrip(c, 64<<10, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr().String() == e.addr() {
			t.Fatal("dial bypassed the proxy")
		}
	}
	dial(t, f, "b", "a", e.addr())
	f.mu.Lock()
	n := len(f.proxies)
	f.mu.Unlock()
	if n != 2 {
		t.Fatalf("want 2 proxies (a->b, b->a), got %d", n)
	}
	if got, want := f.Links(), []Link{{"a", "b"}, {"b", "a"}}; !slices.Equal(got, want) {
		t.Fatalf("Links() = %v, want %v", got, want)
	}
	if got := f.Select(Isolate("a")); len(got) != 2 {
		t.Fatalf("Select(Isolate(a)) = %v", got)
	}
}

func TestDelay(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	c := dial(t, f, "a", "b", e.addr())
	before := medianRTT(t, c)
	rev, err := f.Delay(Links(Link{"a", "b"}), 50*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	during := medianRTT(t, c)
	if rise := during - before; rise < 30*time.Millisecond || rise > 70*time.Millisecond {
		t.Fatalf("delay 50ms raised RTT by %v (before %v, during %v)", rise, before, during)
	}
	// A new connection made during the fault is delayed too.
	if d := medianRTT(t, dial(t, f, "a", "b", e.addr())); d < 30*time.Millisecond {
		t.Fatalf("new connection RTT %v under 50ms delay", d)
	}
	// The reverse link is untouched.
	if d := medianRTT(t, dial(t, f, "b", "a", e.addr())); d > before+20*time.Millisecond {
		t.Fatalf("b->a RTT %v under a->b delay", d)
	}
	mustRevert(t, rev)
	after := medianRTT(t, c)
	if after > before+20*time.Millisecond {
		t.Fatalf("RTT after revert %v, before %v", after, before)
	}
	t.Logf("RTT before %v, with 50ms delay %v, after revert %v", before, during, after)
}

func TestDelayJitterKeepsOrder(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	rev, err := f.Delay(Isolate("a"), 20*time.Millisecond, 15*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer mustRevert(t, rev)
	c := dial(t, f, "a", "b", e.addr())
	want := make([]byte, 0, 2000)
	for i := range 200 { // many small writes, each its own chunk
		b := []byte{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6, 7, 8}
		want = append(want, b...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len(want))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("stream reordered or corrupted under jitter")
	}
}

func TestBandwidth(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	c := dial(t, f, "a", "b", e.addr())
	if d, err := roundTrip(c, 128<<10, 2*time.Second); err != nil || d > 300*time.Millisecond {
		t.Fatalf("uncapped 128KiB round trip: %v, %v", d, err)
	}
	rev, err := f.Bandwidth(Links(Link{"a", "b"}), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	d, err := roundTrip(c, 128<<10, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 128 KiB each way at 64 KiB/s, both directions pipelined: about 2 s.
	if d < 1400*time.Millisecond || d > 2600*time.Millisecond {
		t.Fatalf("128KiB at 64KiB/s took %v, want about 2s", d)
	}
	t.Logf("128KiB echoed at 64KiB/s in %v", d)
	mustRevert(t, rev)
	if d, err := roundTrip(c, 128<<10, 2*time.Second); err != nil || d > 300*time.Millisecond {
		t.Fatalf("after revert 128KiB round trip: %v, %v", d, err)
	}
}

func TestBlackhole(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	c := dial(t, f, "a", "b", e.addr())
	medianRTT(t, c)
	rev, err := f.Blackhole(Isolate("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("write into blackhole not accepted: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4)
	if n, err := c.Read(buf); !isTimeout(err) {
		t.Fatalf("blackhole delivered: n=%d err=%v", n, err)
	}
	// New connections are accepted and swallowed as well.
	c2 := dial(t, f, "a", "b", e.addr())
	if _, err := roundTrip(c2, 1, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection through blackhole: %v", err)
	}
	mustRevert(t, rev)
	// Held data is delivered on heal, like TCP retransmission.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("held data after heal: %q %v", buf, err)
	}
	if _, err := roundTrip(dial(t, f, "a", "b", e.addr()), 1, 2*time.Second); err != nil {
		t.Fatalf("new connection after revert: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connClosed reports whether c is closed or reset by the far side within
// limit.
func connClosed(c net.Conn, limit time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

func TestCutSymmetric(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	ab := dial(t, f, "a", "b", e.addr())
	ba := dial(t, f, "b", "a", e.addr())
	cb := dial(t, f, "c", "b", e.addr())
	medianRTT(t, ab)
	medianRTT(t, ba)
	rev, err := f.Cut(Split([]string{"a"}, []string{"b", "c"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"a->b": ab, "b->a": ba} {
		if !connClosed(c, time.Second) {
			t.Fatalf("%s connection still open after cut", name)
		}
	}
	for _, l := range []Link{{"a", "b"}, {"b", "a"}, {"a", "c"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := f.Dialer()(ctx, l.From, l.To, e.addr())
		cancel()
		if err == nil {
			_ = c.Close()
			t.Fatalf("dial %s through a cut succeeded", l)
		}
		if !isTimeout(err) {
			t.Fatalf("dial %s through a cut: want a timeout, got %v", l, err)
		}
	}
	// Inside a group, traffic flows.
	if _, err := roundTrip(cb, 1, time.Second); err != nil {
		t.Fatalf("c->b inside the majority: %v", err)
	}
	// A dial waiting on a cut goes ahead when the cut heals.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := f.Dialer()(ctx, "a", "b", e.addr())
		if err == nil {
			_, err = roundTrip(c, 1, time.Second)
			_ = c.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	mustRevert(t, rev)
	if err := <-done; err != nil {
		t.Fatalf("dial across a healed cut: %v", err)
	}
	if _, err := roundTrip(dial(t, f, "b", "a", e.addr()), 1, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCutOneWay(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	ab := dial(t, f, "a", "b", e.addr())
	ba := dial(t, f, "b", "a", e.addr())
	rev, err := f.Cut(OneWay("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer mustRevert(t, rev)
	if !connClosed(ab, time.Second) {
		t.Fatal("a->b still open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if c, err := f.Dialer()(ctx, "a", "b", e.addr()); err == nil {
		_ = c.Close()
		t.Fatal("a->b dial succeeded")
	}
	if _, err := roundTrip(ba, 1, time.Second); err != nil {
		t.Fatalf("b->a under a one-way a->b cut: %v", err)
	}
	if _, err := roundTrip(dial(t, f, "b", "a", e.addr()), 1, time.Second); err != nil {
		t.Fatalf("new b->a under a one-way a->b cut: %v", err)
	}
}

func TestReset(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	c := dial(t, f, "a", "b", e.addr())
	medianRTT(t, c)
	rev, err := f.Reset(Links(Link{"a", "b"}))
	if err != nil {
		t.Fatal(err)
	}
	if !connClosed(c, time.Second) {
		t.Fatal("open connection not reset")
	}
	c2 := dial(t, f, "a", "b", e.addr())
	_, err = roundTrip(c2, 1, time.Second)
	if err == nil || isTimeout(err) {
		t.Fatalf("new connection under reset: want reset, got %v", err)
	}
	t.Logf("reset connection: %v", err)
	mustRevert(t, rev)
	if _, err := roundTrip(dial(t, f, "a", "b", e.addr()), 1, time.Second); err != nil {
		t.Fatal(err)
	}
}

// silentShare opens n connections over a->b concurrently and counts those
// whose one-byte echo did not come back within limit.
func silentShare(t *testing.T, f *Fabric, addr string, n int, limit time.Duration) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	silent := 0
	for range n {
		c := dial(t, f, "a", "b", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := roundTrip(c, 1, limit)
			if err != nil {
				mu.Lock()
				silent++
				mu.Unlock()
			}
			_ = c.Close()
		}()
	}
	wg.Wait()
	return silent
}

func TestLoss(t *testing.T) {
	e := newEcho(t)
	f := newFabric(t)
	for _, tc := range []struct {
		p        float64
		n        int
		min, max int
	}{
		{0, 30, 0, 0},
		{1, 30, 30, 30},
		{0.5, 60, 15, 45}, // binomial(60, .5): sd 3.9, bounds at ±3.8 sd
	} {
		rev, err := f.Loss(Links(Link{"a", "b"}), tc.p)
		if err != nil {
			t.Fatal(err)
		}
		got := silentShare(t, f, e.addr(), tc.n, 500*time.Millisecond)
		mustRevert(t, rev)
		t.Logf("loss %v: %d of %d connections silent", tc.p, got, tc.n)
		if got < tc.min || got > tc.max {
			t.Fatalf("loss %v: %d of %d silent, want [%d, %d]", tc.p, got, tc.n, tc.min, tc.max)
		}
	}
	if _, err := f.Loss(Isolate("a"), 1.5); err == nil {
		t.Fatal("probability 1.5 accepted")
	}
}

func TestProbe(t *testing.T) {
	f := newFabric(t)
	ctx := context.Background()
	base, err := f.Probe(ctx, Link{"x", "y"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := f.Delay(Isolate("x"), 40*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Probe(ctx, Link{"x", "y"}, 1000)
	mustRevert(t, rev)
	if err != nil || d < 40*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("probe under 40ms delay: %v %v (base %v)", d, err, base)
	}
	rev, err = f.Cut(Isolate("x"))
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = f.Probe(pctx, Link{"y", "x"}, 1)
	cancel()
	mustRevert(t, rev)
	if err == nil {
		t.Fatal("probe through a cut succeeded")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	e := newEcho(t)
	f := New(nil)
	c := dial(t, f, "a", "b", e.addr())
	medianRTT(t, c)
	// Leave a stalled connection and an active fault behind.
	if _, err := f.Blackhole(Isolate("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	var listen []string
	for _, p := range f.proxies {
		listen = append(listen, p.ln.Addr().String())
	}
	f.mu.Unlock()
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	for _, a := range listen {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			_ = c.Close()
			t.Fatalf("proxy listener %s still accepts after Close", a)
		}
	}
	if _, err := f.Dialer()(context.Background(), "a", "b", e.addr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after Close: %v", err)
	}
	if _, err := f.Delay(Isolate("a"), time.Millisecond, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("fault after Close: %v", err)
	}
	// goleak (TestMain) checks that no goroutine is left.
}

func TestUpstreamDownIsReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	f := newFabric(t)
	c, err := f.Dialer()(context.Background(), "a", "b", addr)
	if err != nil {
		return // reset before connect returned: the dial fails, as it should
	}
	defer c.Close()
	if !connClosed(c, time.Second) {
		t.Fatal("connection to a dead destination stays open")
	}
}

// BenchmarkThroughput measures an unfaulted link (go test -bench .).
func BenchmarkThroughput(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}()
	f := New(nil)
	defer f.Close()
	c, err := f.Dialer()(context.Background(), "a", "b", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	<-done
}
