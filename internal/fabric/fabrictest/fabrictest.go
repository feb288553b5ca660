// Package fabrictest has test helpers for code that runs over the network
// fabric: a real TCP echo server on loopback, a fabric closed at the end of
// the test, and round-trip probes.
package fabrictest

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

	"github.com/soakd/soakd/internal/fabric"
)

// Echo is a real TCP echo on loopback.
type Echo struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func NewEcho(t testing.TB) *Echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &Echo{ln: ln, conns: map[net.Conn]bool{}}
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

// Addr is the echo server's address.
func (e *Echo) Addr() string { return e.ln.Addr().String() }

func New(t *testing.T, opts ...fabric.Option) *fabric.Fabric {
	t.Helper()
	f := fabric.New(slog.New(slog.DiscardHandler), opts...)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

func Dial(t *testing.T, f *fabric.Fabric, from, to, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := f.Dialer()(ctx, from, to, addr)
	if err != nil {
		t.Fatalf("Dial %s->%s: %v", from, to, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RoundTrip sends n bytes and reads them back within limit.
func RoundTrip(c net.Conn, n int, limit time.Duration) (time.Duration, error) {
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

// MedianRTT warms the connection up, then returns the median of 9 one-byte
// round trips.
func MedianRTT(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	for range 3 {
		if _, err := RoundTrip(c, 1, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var ds []time.Duration
	for range 9 {
		d, err := RoundTrip(c, 1, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func MustRevert(t *testing.T, r func(context.Context) error) {
	t.Helper()
	for range 2 { // idempotent
		if err := r(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
