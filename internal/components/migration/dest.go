package migration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components/migration/codec"
	"github.com/soakd/soakd/internal/components/migration/xbzrle"
)

// The destination side: a host accepts a migration's streams, applies its
// pages into fresh memory, verifies at the end and, on commit, adopts the
// guest and resumes it. Until then the source's copy is the guest; an
// aborted incoming migration frees its memory and leaves no trace.

type inState int

const (
	inReceiving inState = iota
	inVerified
	inResumed
	inAborted
)

// incoming is one migration arriving at a host.
type incoming struct {
	id    uint64
	h     hello
	host  *Host
	codec codec.Codec
	mem   *region
	gens  *region // per-page generation last applied
	sums  *region // per-page hash of what was applied

	mu      sync.Mutex
	state   inState
	conns   []net.Conn
	joined  int
	ended   int
	allEnds chan struct{} // closed when every stream has ended
	corrupt error         // first undecodable frame or delta
	wg      sync.WaitGroup
	timer   *time.Timer

	done     chan struct{} // closed once resumed or aborted
	doneOnce sync.Once
}

func newIncoming(host *Host, h hello) (*incoming, error) {
	c, err := codec.ByName(h.Codec)
	if err != nil {
		return nil, err
	}
	if h.PageSize != PageSize || h.Size <= 0 || h.Size%PageSize != 0 || h.Size > maxGuestBytes ||
		h.Streams < 1 || h.Streams > maxStreams {
		return nil, fmt.Errorf("migration: bad hello: size %d, page %d, streams %d", h.Size, h.PageSize, h.Streams)
	}
	in := &incoming{id: h.ID, h: h, host: host, codec: c, allEnds: make(chan struct{}), done: make(chan struct{})}
	pages := h.Size / PageSize
	if in.mem, err = newRegion(h.Size); err == nil {
		if in.gens, err = newRegion(pages * 8); err == nil {
			in.sums, err = newRegion(pages * 8)
		}
	}
	if err != nil {
		in.free()
		return nil, err
	}
	// A stream that never joins must not pin the memory.
	in.timer = time.AfterFunc(host.stall, func() {
		in.mu.Lock()
		late := in.joined < in.h.Streams
		in.mu.Unlock()
		if late {
			in.abort(errors.New("streams did not all join"))
		}
	})
	// Free the memory once every stream is gone, unless the guest was adopted.
	host.wg.Go(func() {
		<-in.done
		in.wg.Wait()
		in.mu.Lock()
		keep := in.state == inResumed
		in.mu.Unlock()
		if !keep {
			in.free()
		}
		host.forget(in.id, keep)
	})
	return in, nil
}

func (in *incoming) free() {
	_ = in.mem.free()
	_ = in.gens.free()
	_ = in.sums.free()
}

// finish marks the migration resumed or aborted.
func (in *incoming) finish() { in.doneOnce.Do(func() { close(in.done) }) }

// join adds a stream's connection; false if the migration is over.
func (in *incoming) join(c net.Conn) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state == inAborted || in.state == inResumed {
		return false
	}
	in.conns = append(in.conns, c)
	in.joined++
	in.wg.Add(1)
	if in.joined == in.h.Streams {
		in.timer.Stop()
	}
	return true
}

// abort ends the migration unless the guest already resumed here.
func (in *incoming) abort(err error) {
	in.mu.Lock()
	if in.state == inResumed || in.state == inAborted {
		in.mu.Unlock()
		return
	}
	in.state = inAborted
	conns := in.conns
	in.mu.Unlock()
	in.host.log.Debug("incoming migration aborted", "id", in.id, "guest", in.h.Guest, "err", err)
	for _, c := range conns {
		_ = c.Close()
	}
	in.finish()
}

// serveWith runs one stream until it ends; fr has read its hello.
func (in *incoming) serveWith(c net.Conn, fr *frameReader, h hello) {
	defer in.wg.Done()
	fw := newFrameWriter(c)
	var buf []byte
	pages := in.h.Size / PageSize
	ended := false
	for {
		if !ended {
			in.host.deadline(c)
		} else {
			_ = c.SetDeadline(time.Time{}) // the source closes it after the commit
		}
		typ, raw, payload, err := fr.next()
		if err != nil {
			if !ended { // a stream cut before its end: the migration is over
				in.abort(fmt.Errorf("stream %d: %w", h.Stream, err))
			}
			return
		}
		if ended {
			in.abort(fmt.Errorf("stream %d: frame after its end", h.Stream))
			return
		}
		switch typ {
		case framePages:
			batch := payload // codec none: the frame is the batch
			if in.codec.Name() != "none" {
				buf, err = in.codec.Decompress(buf[:0], payload, raw)
				batch = buf
			}
			if err == nil && len(batch) != raw {
				err = fmt.Errorf("batch of %d bytes, header says %d", len(batch), raw)
			}
			if err == nil {
				err = in.apply(batch, pages)
			}
			if err != nil {
				in.markCorrupt(fmt.Errorf("stream %d: %w", h.Stream, err))
			}
		case frameSync:
			// Frames apply in order: all before the sync are in memory.
			in.host.deadline(c)
			if err := fw.control(frameSynced, struct{}{}); err != nil {
				in.abort(fmt.Errorf("stream %d: %w", h.Stream, err))
				return
			}
		case frameEnd:
			var e end
			if err := json.Unmarshal(payload, &e); err != nil {
				in.abort(err)
				return
			}
			in.endStream()
			ended = true
			if h.Stream == 0 {
				in.switchOver(c, fr, fw, e)
				return
			}
		default:
			in.abort(fmt.Errorf("stream %d: unexpected frame type %d", h.Stream, typ))
			return
		}
	}
}

func (in *incoming) markCorrupt(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.corrupt == nil {
		in.corrupt = err
	}
}

// apply writes a batch's pages into the incoming memory. Pages of one
// stream are disjoint from other streams', so streams apply in parallel.
func (in *incoming) apply(batch []byte, pages int) error {
	gens, sums := in.gens.u64s(), in.sums.u64s()
	for len(batch) > 0 {
		e, rest, err := nextEntry(batch, pages)
		if err != nil {
			return err
		}
		batch = rest
		if e.gen < gens[e.page] {
			continue // an older version: never overwrites a newer one
		}
		page := in.mem.page(e.page)
		switch e.kind {
		case pageZero:
			if gens[e.page] == 0 {
				// Fresh memory is zero already: touching it would only
				// fault the page in.
				sums[e.page], gens[e.page] = zeroPageHash, e.gen
				continue
			}
			clear(page)
		case pageRaw:
			copy(page, e.data)
		case pageDelta:
			if err := xbzrle.Decode(page, e.data); err != nil {
				return fmt.Errorf("page %d: %w", e.page, err)
			}
		}
		sums[e.page], gens[e.page] = pageHash(page), e.gen
	}
	return nil
}

func (in *incoming) endStream() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ended++; in.ended == in.h.Streams {
		close(in.allEnds)
	}
}

// switchOver runs on stream 0 after its end: wait for every stream's end,
// verify, answer, and on commit adopt and resume the guest.
func (in *incoming) switchOver(c net.Conn, fr *frameReader, fw *frameWriter, e end) {
	select {
	case <-in.allEnds:
	case <-in.done:
		return
	}
	v := in.verify(e)
	in.host.deadline(c)
	if err := fw.control(frameVerdict, v); err != nil {
		in.abort(err)
		return
	}
	if !v.OK {
		sums := in.sums.b
		_ = fw.frame(frameHashes, len(sums), sums)
		_ = fw.flush()
		in.abort(errors.New(v.Problem))
		return
	}
	in.mu.Lock()
	in.state = inVerified
	in.mu.Unlock()
	var commit struct{}
	in.host.deadline(c)
	if err := fr.control(frameCommit, &commit); err != nil {
		in.abort(fmt.Errorf("commit: %w", err))
		return
	}
	g, gap, ok := in.resume(*e.CPU)
	if !ok {
		return // aborted out of band meanwhile
	}
	in.host.deadline(c)
	_ = fw.control(frameResumed, resumed{At: time.Now(), Gap: gap})
	in.host.log.Debug("guest resumed", "guest", g.ID, "id", in.id)
}

// verify checks what arrived against the source's hashes and the guest's
// one-edge invariant.
func (in *incoming) verify(e end) verdict {
	v := verdict{DstHash: listHash(in.sums.u64s())}
	in.mu.Lock()
	corrupt := in.corrupt
	in.mu.Unlock()
	switch {
	case e.CPU == nil:
		v.Problem = "no guest state in the end frame"
	case corrupt != nil:
		v.Problem = "corrupt frame: " + corrupt.Error()
	case v.DstHash != e.SrcHash:
		v.Problem = "page hashes differ from the source's"
	case in.h.Edge:
		if err := checkEdge(in.mem, hotPages(in.mem.pages(), in.h.Workload.HotSet), *e.CPU); err != nil {
			v.Problem = "one-edge invariant: " + err.Error()
		}
	}
	v.OK = v.Problem == ""
	return v
}

// resume adopts the guest at the host and starts it, unless the migration
// was aborted out of band (resolve) first.
func (in *incoming) resume(cpu CPUState) (*Guest, time.Duration, bool) {
	in.mu.Lock()
	if in.state != inVerified {
		in.mu.Unlock()
		return nil, 0, false
	}
	in.state = inResumed
	in.mu.Unlock()
	g := newGuestOn(in.h.Guest, in.mem, in.h.Workload, in.host.clock)
	_ = in.gens.free()
	_ = in.sums.free()
	gap := in.host.adopt(g, cpu)
	in.finish()
	return g, gap, true
}

// resolveOutOfBand says whether the migration resumed here; if it had not,
// it never will.
func (in *incoming) resolveOutOfBand() bool {
	in.mu.Lock()
	resumedHere := in.state == inResumed
	in.mu.Unlock()
	if !resumedHere {
		in.abort(errors.New("aborted out of band"))
	}
	return resumedHere
}
