package fabric

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// MaxProbePayload bounds what one Probe sends.
const MaxProbePayload = 1 << 20

// Probe measures link l as the fabric shapes it now: it opens a real
// loopback TCP connection as a connection of l (the shaping is the same
// whether l's nodes are in the process or behind a proxy; a dial into a cut
// link fails the same way), sends payload bytes to an echo on the far side
// and returns the time until all of them came back. ctx bounds the whole
// probe; a blackholed link therefore returns ctx's error. l need not have
// been dialled yet: rules match by name. A probe's connection has its own
// pacer, so a bandwidth probe does not take the link's capacity.
func (f *Fabric) Probe(ctx context.Context, l Link, payload int) (time.Duration, error) {
	payload = max(1, min(payload, MaxProbePayload))
	if err := f.gate(ctx, l.From, l.To, ""); err != nil {
		return 0, err
	}
	pl := &link{key: linkKey{l.From, l.To, "probe"}, conns: make(map[*linkConn]struct{})}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return 0, ErrClosed
	}
	f.probes[pl] = struct{}{}
	f.wg.Add(1) // under f.mu: Close cannot be waiting yet
	f.mu.Unlock()
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.probes, pl)
		f.mu.Unlock()
		pl.killConns(false)
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("fabric: probe: %w", err)
	}
	defer ln.Close()
	client, err := f.dialLink(ctx, pl, ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("fabric: probe %s: %w", l, err)
	}
	defer client.Close()
	echo, err := acceptFrom(ln, client.LocalAddr())
	if err != nil {
		return 0, err
	}
	defer echo.Close()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, _ = io.Copy(echo, echo)
		_ = echo.Close()
	}()

	if dl, ok := ctx.Deadline(); ok {
		_ = client.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = client.SetDeadline(time.Now()) })
	defer stop()

	msg := make([]byte, payload)
	for i := range msg {
		msg[i] = byte(i)
	}
	start := time.Now()
	werr := make(chan error, 1)
	f.wg.Add(1)
	go func() { // write while reading: the payload may exceed the buffers
		defer f.wg.Done()
		_, err := client.Write(msg)
		werr <- err
	}()
	got := make([]byte, payload)
	_, err = io.ReadFull(client, got)
	rtt := time.Since(start)
	_ = client.Close() // ends the writer if it is still blocked
	if e := <-werr; err == nil && e != nil {
		err = e
	}
	if err != nil {
		if ctx.Err() != nil {
			return rtt, fmt.Errorf("fabric: probe %s: no echo within %v: %w", l, rtt.Round(time.Millisecond), ctx.Err())
		}
		return rtt, fmt.Errorf("fabric: probe %s: %w", l, err)
	}
	for i := range got {
		if got[i] != msg[i] {
			return rtt, fmt.Errorf("fabric: probe %s: echo corrupted at byte %d", l, i)
		}
	}
	return rtt, nil
}

// acceptFrom accepts ln's connection from the address from.
func acceptFrom(ln net.Listener, from net.Addr) (net.Conn, error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, fmt.Errorf("fabric: probe: %w", err)
		}
		if c.RemoteAddr().String() == from.String() {
			return c, nil
		}
		_ = c.Close() // a stray connection to the probe's listener
	}
}
