package fabric_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/fabric/fabrictest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eachMode runs test on both ways the fabric carries a link: shaped in the
// process (the default) and through the link's proxy (WithProxies).
func eachMode(t *testing.T, test func(t *testing.T, opts ...fabric.Option)) {
	t.Run("inline", func(t *testing.T) { test(t) })
	t.Run("proxied", func(t *testing.T) { test(t, fabric.WithProxies()) })
}

// In the process, a link's connection is the dialing node's own socket to
// the destination: no proxy, no listener.
func TestInlineDialIsDirect(t *testing.T) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t)
	for range 3 {
		c := fabrictest.Dial(t, f, "a", "b", e.Addr())
		if _, err := fabrictest.RoundTrip(c, 64<<10, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr().String() != e.Addr() {
			t.Fatalf("inline connection goes to %v, not the destination %s", c.RemoteAddr(), e.Addr())
		}
	}
	fabrictest.Dial(t, f, "b", "a", e.Addr())
	if n := len(fabric.ProxyAddrs(f)); n != 0 {
		t.Fatalf("%d proxies started in the process", n)
	}
	if got, want := f.Links(), []fabric.Link{{"a", "b"}, {"b", "a"}}; !slices.Equal(got, want) {
		t.Fatalf("Links() = %v, want %v", got, want)
	}
	if n := fabric.Conns(f); n != 4 {
		t.Fatalf("%d connections known, want 4", n)
	}
}

func TestEchoAndOneProxyPerLink(t *testing.T) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, fabric.WithProxies())
	for range 3 {
		c := fabrictest.Dial(t, f, "a", "b", e.Addr())
		if _, err := fabrictest.RoundTrip(c, 64<<10, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr().String() == e.Addr() {
			t.Fatal("Dial bypassed the proxy")
		}
	}
	fabrictest.Dial(t, f, "b", "a", e.Addr())
	if n := len(fabric.ProxyAddrs(f)); n != 2 {
		t.Fatalf("want 2 proxies (a->b, b->a), got %d", n)
	}
	if got, want := f.Links(), []fabric.Link{{"a", "b"}, {"b", "a"}}; !slices.Equal(got, want) {
		t.Fatalf("Links() = %v, want %v", got, want)
	}
	if got := f.Select(fabric.Isolate("a")); len(got) != 2 {
		t.Fatalf("Select(fabric.Isolate(a)) = %v", got)
	}
}

func TestDelay(t *testing.T) {
	eachMode(t, testDelay)
}

func testDelay(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	before := fabrictest.MedianRTT(t, c)
	rev, err := f.Delay(fabric.Links(fabric.Link{From: "a", To: "b"}), 50*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	during := fabrictest.MedianRTT(t, c)
	if rise := during - before; rise < 30*time.Millisecond || rise > 70*time.Millisecond {
		t.Fatalf("delay 50ms raised RTT by %v (before %v, during %v)", rise, before, during)
	}
	// A new connection made during the fault is delayed too.
	if d := fabrictest.MedianRTT(t, fabrictest.Dial(t, f, "a", "b", e.Addr())); d < 30*time.Millisecond {
		t.Fatalf("new connection RTT %v under 50ms delay", d)
	}
	// The reverse link is untouched.
	if d := fabrictest.MedianRTT(t, fabrictest.Dial(t, f, "b", "a", e.Addr())); d > before+20*time.Millisecond {
		t.Fatalf("b->a RTT %v under a->b delay", d)
	}
	fabrictest.MustRevert(t, rev)
	after := fabrictest.MedianRTT(t, c)
	if after > before+20*time.Millisecond {
		t.Fatalf("RTT after revert %v, before %v", after, before)
	}
	t.Logf("RTT before %v, with 50ms delay %v, after revert %v", before, during, after)
}

func TestDelayJitterKeepsOrder(t *testing.T) {
	eachMode(t, testDelayJitterKeepsOrder)
}

func testDelayJitterKeepsOrder(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	rev, err := f.Delay(fabric.Isolate("a"), 20*time.Millisecond, 15*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fabrictest.MustRevert(t, rev)
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
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
	eachMode(t, testBandwidth)
}

func testBandwidth(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	if d, err := fabrictest.RoundTrip(c, 128<<10, 2*time.Second); err != nil || d > 300*time.Millisecond {
		t.Fatalf("uncapped 128KiB round trip: %v, %v", d, err)
	}
	rev, err := f.Bandwidth(fabric.Links(fabric.Link{From: "a", To: "b"}), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	d, err := fabrictest.RoundTrip(c, 128<<10, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 128 KiB each way at 64 KiB/s, both directions pipelined: about 2 s.
	if d < 1400*time.Millisecond || d > 2600*time.Millisecond {
		t.Fatalf("128KiB at 64KiB/s took %v, want about 2s", d)
	}
	t.Logf("128KiB echoed at 64KiB/s in %v", d)
	fabrictest.MustRevert(t, rev)
	if d, err := fabrictest.RoundTrip(c, 128<<10, 2*time.Second); err != nil || d > 300*time.Millisecond {
		t.Fatalf("after revert 128KiB round trip: %v, %v", d, err)
	}
}

func TestBlackhole(t *testing.T) {
	eachMode(t, testBlackhole)
}

func testBlackhole(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	fabrictest.MedianRTT(t, c)
	rev, err := f.Blackhole(fabric.Isolate("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("write into blackhole not accepted: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4)
	if n, err := c.Read(buf); !fabrictest.IsTimeout(err) {
		t.Fatalf("blackhole delivered: n=%d err=%v", n, err)
	}
	// New connections are accepted and swallowed as well.
	c2 := fabrictest.Dial(t, f, "a", "b", e.Addr())
	if _, err := fabrictest.RoundTrip(c2, 1, 300*time.Millisecond); !fabrictest.IsTimeout(err) {
		t.Fatalf("new connection through blackhole: %v", err)
	}
	fabrictest.MustRevert(t, rev)
	// Held data is delivered on heal, like TCP retransmission.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("held data after heal: %q %v", buf, err)
	}
	if _, err := fabrictest.RoundTrip(fabrictest.Dial(t, f, "a", "b", e.Addr()), 1, 2*time.Second); err != nil {
		t.Fatalf("new connection after revert: %v", err)
	}
}

// connClosed reports whether c is closed or reset by the far side within
// limit.
func connClosed(c net.Conn, limit time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !fabrictest.IsTimeout(err)
}

func TestCutSymmetric(t *testing.T) {
	eachMode(t, testCutSymmetric)
}

func testCutSymmetric(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	ab := fabrictest.Dial(t, f, "a", "b", e.Addr())
	ba := fabrictest.Dial(t, f, "b", "a", e.Addr())
	cb := fabrictest.Dial(t, f, "c", "b", e.Addr())
	fabrictest.MedianRTT(t, ab)
	fabrictest.MedianRTT(t, ba)
	rev, err := f.Cut(fabric.Split([]string{"a"}, []string{"b", "c"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"a->b": ab, "b->a": ba} {
		if !connClosed(c, time.Second) {
			t.Fatalf("%s connection still open after cut", name)
		}
	}
	for _, l := range []fabric.Link{{"a", "b"}, {"b", "a"}, {"a", "c"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := f.Dialer()(ctx, l.From, l.To, e.Addr())
		cancel()
		if err == nil {
			_ = c.Close()
			t.Fatalf("Dial %s through a cut succeeded", l)
		}
		if !fabrictest.IsTimeout(err) {
			t.Fatalf("Dial %s through a cut: want a timeout, got %v", l, err)
		}
	}
	// Inside a group, traffic flows.
	if _, err := fabrictest.RoundTrip(cb, 1, time.Second); err != nil {
		t.Fatalf("c->b inside the majority: %v", err)
	}
	// A Dial waiting on a cut goes ahead when the cut heals.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := f.Dialer()(ctx, "a", "b", e.Addr())
		if err == nil {
			_, err = fabrictest.RoundTrip(c, 1, time.Second)
			_ = c.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	fabrictest.MustRevert(t, rev)
	if err := <-done; err != nil {
		t.Fatalf("Dial across a healed cut: %v", err)
	}
	if _, err := fabrictest.RoundTrip(fabrictest.Dial(t, f, "b", "a", e.Addr()), 1, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCutOneWay(t *testing.T) {
	eachMode(t, testCutOneWay)
}

func testCutOneWay(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	ab := fabrictest.Dial(t, f, "a", "b", e.Addr())
	ba := fabrictest.Dial(t, f, "b", "a", e.Addr())
	rev, err := f.Cut(fabric.OneWay("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer fabrictest.MustRevert(t, rev)
	if !connClosed(ab, time.Second) {
		t.Fatal("a->b still open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if c, err := f.Dialer()(ctx, "a", "b", e.Addr()); err == nil {
		_ = c.Close()
		t.Fatal("a->b Dial succeeded")
	}
	if _, err := fabrictest.RoundTrip(ba, 1, time.Second); err != nil {
		t.Fatalf("b->a under a one-way a->b cut: %v", err)
	}
	if _, err := fabrictest.RoundTrip(fabrictest.Dial(t, f, "b", "a", e.Addr()), 1, time.Second); err != nil {
		t.Fatalf("new b->a under a one-way a->b cut: %v", err)
	}
}

func TestReset(t *testing.T) {
	eachMode(t, testReset)
}

func testReset(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	fabrictest.MedianRTT(t, c)
	rev, err := f.Reset(fabric.Links(fabric.Link{From: "a", To: "b"}))
	if err != nil {
		t.Fatal(err)
	}
	if !connClosed(c, time.Second) {
		t.Fatal("open connection not reset")
	}
	c2 := fabrictest.Dial(t, f, "a", "b", e.Addr())
	_, err = fabrictest.RoundTrip(c2, 1, time.Second)
	if err == nil || fabrictest.IsTimeout(err) {
		t.Fatalf("new connection under reset: want reset, got %v", err)
	}
	t.Logf("reset connection: %v", err)
	fabrictest.MustRevert(t, rev)
	if _, err := fabrictest.RoundTrip(fabrictest.Dial(t, f, "a", "b", e.Addr()), 1, time.Second); err != nil {
		t.Fatal(err)
	}
}

// silentShare opens n connections over a->b concurrently and counts those
// whose one-byte echo did not come back within limit.
func silentShare(t *testing.T, f *fabric.Fabric, addr string, n int, limit time.Duration) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	silent := 0
	for range n {
		c := fabrictest.Dial(t, f, "a", "b", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := fabrictest.RoundTrip(c, 1, limit)
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
	eachMode(t, testLoss)
}

func testLoss(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabrictest.New(t, opts...)
	for _, tc := range []struct {
		p        float64
		n        int
		min, max int
	}{
		{0, 30, 0, 0},
		{1, 30, 30, 30},
		{0.5, 60, 15, 45}, // binomial(60, .5): sd 3.9, bounds at ±3.8 sd
	} {
		rev, err := f.Loss(fabric.Links(fabric.Link{From: "a", To: "b"}), tc.p)
		if err != nil {
			t.Fatal(err)
		}
		got := silentShare(t, f, e.Addr(), tc.n, 500*time.Millisecond)
		fabrictest.MustRevert(t, rev)
		t.Logf("loss %v: %d of %d connections silent", tc.p, got, tc.n)
		if got < tc.min || got > tc.max {
			t.Fatalf("loss %v: %d of %d silent, want [%d, %d]", tc.p, got, tc.n, tc.min, tc.max)
		}
	}
	if _, err := f.Loss(fabric.Isolate("a"), 1.5); err == nil {
		t.Fatal("probability 1.5 accepted")
	}
}

func TestProbe(t *testing.T) {
	f := fabrictest.New(t)
	ctx := context.Background()
	base, err := f.Probe(ctx, fabric.Link{From: "x", To: "y"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := f.Delay(fabric.Isolate("x"), 40*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Probe(ctx, fabric.Link{From: "x", To: "y"}, 1000)
	fabrictest.MustRevert(t, rev)
	if err != nil || d < 40*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("probe under 40ms delay: %v %v (base %v)", d, err, base)
	}
	rev, err = f.Cut(fabric.Isolate("x"))
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = f.Probe(pctx, fabric.Link{From: "y", To: "x"}, 1)
	cancel()
	fabrictest.MustRevert(t, rev)
	if err == nil {
		t.Fatal("probe through a cut succeeded")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	eachMode(t, testCloseStopsEverything)
}

func testCloseStopsEverything(t *testing.T, opts ...fabric.Option) {
	e := fabrictest.NewEcho(t)
	f := fabric.New(nil, opts...)
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	fabrictest.MedianRTT(t, c)
	// Leave a stalled connection and an active fault behind.
	if _, err := f.Blackhole(fabric.Isolate("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	listen := fabric.ProxyAddrs(f)
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
	if _, err := f.Dialer()(context.Background(), "a", "b", e.Addr()); !errors.Is(err, fabric.ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if _, err := f.Delay(fabric.Isolate("a"), time.Millisecond, 0); !errors.Is(err, fabric.ErrClosed) {
		t.Fatalf("fault after Close: %v", err)
	}
	// goleak (TestMain) checks that no goroutine is left.
}

func TestUpstreamDownIsReset(t *testing.T) {
	eachMode(t, testUpstreamDownIsReset)
}

func testUpstreamDownIsReset(t *testing.T, opts ...fabric.Option) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	f := fabrictest.New(t, opts...)
	c, err := f.Dialer()(context.Background(), "a", "b", addr)
	if err != nil {
		return // reset before connect returned: the Dial fails, as it should
	}
	defer c.Close()
	if !connClosed(c, time.Second) {
		t.Fatal("connection to a dead destination stays open")
	}
}

// BenchmarkThroughput compares an unfaulted link with direct loopback TCP
// in one run (go test -run xxx -bench Throughput ./internal/fabric). Each
// iteration moves throughputRound bytes per stream, to the same sink, over
// direct connections, over in-process fabric connections and proxied ones
// (link a->b, no rule) and over a bare proxy (two io.Copy calls, splice on
// Linux: the ceiling of any proxy with a loopback hop), in rotating order.
// It reports each path's MB/s, inline/direct, proxied/direct and
// proxied/proxy.
func BenchmarkThroughput(b *testing.B) {
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) { benchThroughput(b, streams) })
	}
}

const throughputRound = 64 << 20

// sinkConn reads exactly the byte counts it is sent on want and answers on
// got.
type sinkConn struct {
	want chan int
	got  chan error
}

// benchPath is one way to the sink: its client connections and their sinks.
type benchPath struct {
	conns []net.Conn
	sinks []sinkConn
	took  time.Duration
}

func benchThroughput(b *testing.B, streams int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var paths [4]benchPath // direct, inline, proxied, bare proxy
	defer func() {
		for _, p := range paths {
			for i := range p.conns {
				_ = p.conns[i].Close()
				close(p.sinks[i].want)
			}
		}
	}()
	add := func(p *benchPath, c net.Conn, err error) {
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		sc := sinkConn{want: make(chan int), got: make(chan error, 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			buf := make([]byte, 256<<10)
			for n := range sc.want {
				var err error
				for n > 0 && err == nil {
					var k int
					k, err = s.Read(buf[:min(n, len(buf))])
					n -= k
				}
				sc.got <- err
			}
		}()
		p.conns = append(p.conns, c)
		p.sinks = append(p.sinks, sc)
	}
	inline := fabric.New(nil)
	defer inline.Close()
	proxied := fabric.New(nil, fabric.WithProxies())
	defer proxied.Close()
	bare := bareProxy(b, ln.Addr().String(), &wg)
	defer bare.Close()
	for range streams {
		c, err := net.Dial("tcp", ln.Addr().String())
		add(&paths[0], c, err)
		c, err = inline.Dialer()(context.Background(), "a", "b", ln.Addr().String())
		add(&paths[1], c, err)
		c, err = proxied.Dialer()(context.Background(), "a", "b", ln.Addr().String())
		add(&paths[2], c, err)
		c, err = net.Dial("tcp", bare.Addr().String())
		add(&paths[3], c, err)
	}
	payload := make([]byte, throughputRound)
	round := func(p *benchPath) time.Duration {
		start := time.Now()
		werr := make(chan error, len(p.conns))
		for i, c := range p.conns {
			p.sinks[i].want <- len(payload)
			go func() { _, err := c.Write(payload); werr <- err }()
		}
		for i := range p.conns {
			if err := <-werr; err != nil {
				b.Fatal(err)
			}
			if err := <-p.sinks[i].got; err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	for i := range paths {
		round(&paths[i]) // warm up
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range paths { // rotate the order so drift hits all alike
			p := &paths[(i+j)%len(paths)]
			p.took += round(p)
		}
	}
	b.StopTimer()
	mb := float64(b.N) * float64(streams) * float64(throughputRound) / 1e6
	b.ReportMetric(mb/paths[0].took.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/paths[1].took.Seconds(), "inline-MB/s")
	b.ReportMetric(mb/paths[2].took.Seconds(), "proxied-MB/s")
	b.ReportMetric(mb/paths[3].took.Seconds(), "proxy-MB/s")
	b.ReportMetric(paths[0].took.Seconds()/paths[1].took.Seconds(), "inline/direct")
	b.ReportMetric(paths[0].took.Seconds()/paths[2].took.Seconds(), "proxied/direct")
	b.ReportMetric(paths[3].took.Seconds()/paths[2].took.Seconds(), "proxied/proxy")
}

// bareProxy forwards each connection to addr with two io.Copy calls and
// nothing else; closing the listener ends it once its clients are closed.
func bareProxy(b *testing.B, addr string, wg *sync.WaitGroup) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return ln
}

// A client that closes while the destination floods it must not strand
// pipe goroutines (toxiproxy v2.5.0 does, which is why the fabric has its
// own proxy); goleak in TestMain checks the rest at the end.
func TestClientCloseDuringFloodLeavesNothing(t *testing.T) {
	eachMode(t, testClientCloseDuringFloodLeavesNothing)
}

func testClientCloseDuringFloodLeavesNothing(t *testing.T, opts ...fabric.Option) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	f := fabrictest.New(t, opts...)
	for range 20 {
		c := fabrictest.Dial(t, f, "a", "b", ln.Addr().String())
		_, _ = c.Read(make([]byte, 1000))
		_ = c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := fabric.Conns(f)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d proxied connections still open 2s after their clients closed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A connection whose client has half-closed waits at most the half-close
// linger for a silent upstream (one that neither answers nor closes), then
// both sides are reset and the proxy holds nothing.
func TestHalfClosedConnectionToSilentUpstreamIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	// The upstream reads the request to its EOF and then stays silent
	// until probed; the probe writes until the reset makes a write fail.
	probe, upstreamReset := make(chan struct{}), make(chan error, 1)
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
		<-probe
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := c.Write([]byte("late")); err != nil {
				upstreamReset <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	const linger = 300 * time.Millisecond
	f := fabric.New(slog.New(slog.DiscardHandler), fabric.WithProxies(), fabric.WithHalfCloseLinger(linger))
	defer f.Close()
	c := fabrictest.Dial(t, f, "a", "b", ln.Addr().String())
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client read %d, %v; want the connection ended by the linger", n, err)
	}
	if waited := time.Since(start); waited < linger {
		t.Fatalf("ended after %v, before the %v linger", waited, linger)
	}
	close(probe)
	if err := <-upstreamReset; errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the upstream side was not reset")
	}
	if n := fabric.Conns(f); n != 0 {
		t.Fatalf("%d proxied connections left", n)
	}
}

// A half-closed connection whose other side answers within the linger
// ends cleanly: the answer arrives whole, then EOF.
func TestHalfClosedConnectionAnsweredInTimeEndsCleanly(t *testing.T) {
	e := fabrictest.NewEcho(t)
	f := fabric.New(slog.New(slog.DiscardHandler), fabric.WithProxies(), fabric.WithHalfCloseLinger(5*time.Second))
	defer f.Close()
	c := fabrictest.Dial(t, f, "a", "b", e.Addr())
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "request" {
		t.Fatalf("read %q, %v; want the echo then EOF", got, err)
	}
}

// BenchmarkMessages is what the fabric costs a component's small messages
// (go test -run xxx -bench Messages ./internal/fabric): 256-byte request and
// reply round trips to an echo, over a direct connection, an in-process
// fabric connection and a proxied one (no rule in force), interleaved in
// one run. It reports the process's CPU time (user+system, getrusage) per
// round trip on each path and the ratios to direct: the proxy's second
// loopback hop is what a soak's harness paid per message.
func BenchmarkMessages(b *testing.B) {
	e := fabrictest.NewEcho(b)
	inline := fabric.New(nil)
	defer inline.Close()
	proxied := fabric.New(nil, fabric.WithProxies())
	defer proxied.Close()
	dial := []func() (net.Conn, error){
		func() (net.Conn, error) { return net.Dial("tcp", e.Addr()) },
		func() (net.Conn, error) { return inline.Dialer()(context.Background(), "a", "b", e.Addr()) },
		func() (net.Conn, error) { return proxied.Dialer()(context.Background(), "a", "b", e.Addr()) },
	}
	conns := make([]net.Conn, len(dial))
	for i, d := range dial {
		c, err := d()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	const batch = 200
	msg, got := make([]byte, 256), make([]byte, 256)
	rtts := func(c net.Conn) {
		for range batch {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, got); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := make([]time.Duration, len(conns))
	for _, c := range conns {
		rtts(c) // warm up
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range conns { // rotate the order so drift hits all alike
			k := (i + j) % len(conns)
			before := processCPU(b)
			rtts(conns[k])
			cpu[k] += processCPU(b) - before
		}
	}
	b.StopTimer()
	per := func(k int) float64 { return float64(cpu[k].Nanoseconds()) / float64(b.N*batch) }
	b.ReportMetric(per(0), "direct-cpu-ns/rt")
	b.ReportMetric(per(1), "inline-cpu-ns/rt")
	b.ReportMetric(per(2), "proxied-cpu-ns/rt")
	b.ReportMetric(per(1)/per(0), "inline/direct")
	b.ReportMetric(per(2)/per(0), "proxied/direct")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
