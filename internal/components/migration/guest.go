package migration

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Workload is what a guest's "CPU" does: it dirties pages of a hot set at
// a rate, and beats a heartbeat every beatInterval so downtime can be seen
// from inside the guest.
type Workload struct {
	Rate    float64 // bytes/s (each touch dirties one page)
	HotSet  float64 // share of pages, (0, 1]
	Pattern string  // sequential | random | once
}

// beatInterval is the guest's heartbeat and dirtying tick: a pause longer
// than this shows as a heartbeat gap.
const beatInterval = 5 * time.Millisecond

// counterBytes at the start of every page are the guest's counter: the
// content generator leaves them zero, and the sequential workload
// increments byte 0 of each hot page in order, QEMU's migration-test
// invariant: after any pause, the hot pages' counters are all equal but
// for one edge, where the pass was interrupted.
const counterBytes = 8

// CPUState is what a paused guest hands over with its memory: where its
// workload stood and when it last beat.
type CPUState struct {
	Cursor   int    // next hot page the sequential workload touches
	Pass     uint64 // completed passes over the hot set
	Touches  uint64
	LastBeat time.Time
	Seed     uint64 // the random pattern's stream, continued on the destination
}

// Guest is one guest: its memory (outside the Go heap), the dirty bitmap
// every write goes through, and its workload.
type Guest struct {
	ID    string
	mem   *region
	dirty *bitmap
	clock clockwork.Clock
	wl    Workload
	hot   int // hot pages: [0, hot)

	mu       sync.Mutex
	cpu      CPUState
	rng      *rand.Rand
	owed     float64 // fractional touches carried to the next tick
	throttle float64 // share of the dirty rate held back, [0, 0.99]
	// loseDirtyEvery is a test knob: every n-th touch skips the dirty
	// bitmap, a planted bug the verification must catch.
	loseDirtyEvery uint64
	limit          float64 // cap on the dirty rate, bytes/s (0: none)
	cancel         context.CancelFunc
	done           chan struct{}
}

// Content is how a generated guest's pages are made.
type Content struct {
	Zero, Text, Random float64 // shares, summing to 1
}

// newGuest maps size bytes and fills them: from image when set (its size
// rounded down to whole pages), else generated from seed with the content
// mix. The workload does not run until resume.
func newGuest(id string, size int, seed uint64, mix Content, image string, wl Workload, clock clockwork.Clock) (*Guest, error) {
	if image != "" {
		st, err := os.Stat(image)
		if err != nil {
			return nil, fmt.Errorf("migration: guest image: %w", err)
		}
		if size = int(st.Size()) / PageSize * PageSize; size == 0 {
			return nil, fmt.Errorf("migration: guest image %s is smaller than one page", image)
		}
	}
	mem, err := newRegion(size)
	if err != nil {
		return nil, err
	}
	g := newGuestOn(id, mem, wl, clock)
	g.cpu.Seed = seed
	g.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	if image != "" {
		err = loadImage(mem, image)
	} else {
		fillPages(mem, seed, mix)
	}
	if err != nil {
		_ = mem.free()
		return nil, err
	}
	return g, nil
}

// GuestSpec is what recreates a guest's memory and workload: the same
// spec builds the same bytes, in this process or in a host process.
type GuestSpec struct {
	ID       string   `json:"id"`
	Size     int      `json:"size"`
	Seed     uint64   `json:"seed"`
	Content  Content  `json:"content"`
	Image    string   `json:"image,omitempty"`
	Workload Workload `json:"workload"`
}

func (s GuestSpec) build(clock clockwork.Clock) (*Guest, error) {
	return newGuest(s.ID, s.Size, s.Seed, s.Content, s.Image, s.Workload, clock)
}

// bytes is the size the spec's guest will have: its image's rounded down
// to whole pages, or Size.
func (s GuestSpec) bytes() (int, error) {
	if s.Image == "" {
		return s.Size, nil
	}
	st, err := os.Stat(s.Image)
	if err != nil {
		return 0, fmt.Errorf("migration: guest image: %w", err)
	}
	return int(st.Size()) / PageSize * PageSize, nil
}

// newGuestOn wraps memory that already holds a guest (a destination's).
func newGuestOn(id string, mem *region, wl Workload, clock clockwork.Clock) *Guest {
	return &Guest{ID: id, mem: mem, dirty: newBitmap(mem.pages()), clock: clock, wl: wl, hot: hotPages(mem.pages(), wl.HotSet)}
}

// hotPages is how many pages, from the first, a workload dirties.
func hotPages(pages int, share float64) int {
	return min(max(1, int(float64(pages)*share)), pages)
}

func loadImage(mem *region, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("migration: guest image: %w", err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, mem.b); err != nil {
		return fmt.Errorf("migration: guest image %s: %w", path, err)
	}
	return nil
}

// words is a small vocabulary for text-like pages: compressible, but not
// trivially.
var words = []string{"the ", "soak ", "page ", "guest ", "memory ", "kernel ", "dirty ", "round ", "stream ",
	"switch ", "over ", "raft ", "leader ", "commit ", "log ", "index ", "term ", "error: ", "ok\n", "0x7f3a ", "\t"}

// fillPages generates a guest's content: each page is zero, text-like or
// random by a hash of (seed, page), and its counter bytes stay zero.
func fillPages(mem *region, seed uint64, mix Content) {
	for i := range mem.pages() {
		h := fnv.New64a()
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], seed)
		binary.LittleEndian.PutUint64(b[8:], uint64(i))
		_, _ = h.Write(b[:])
		x := h.Sum64()
		u := float64(x>>11) / (1 << 53)
		p := mem.page(i)
		switch {
		case u < mix.Zero:
		case u < mix.Zero+mix.Text:
			r := rand.New(rand.NewPCG(x, seed))
			for o := counterBytes; o < len(p); {
				o += copy(p[o:], words[r.IntN(len(words))])
			}
		default:
			r := rand.New(rand.NewPCG(x, seed))
			for o := counterBytes; o+8 <= len(p); o += 8 {
				binary.LittleEndian.PutUint64(p[o:], r.Uint64())
			}
		}
	}
}

// Pages is the guest's size in pages.
func (g *Guest) Pages() int { return g.mem.pages() }

// Size is the guest's size in bytes.
func (g *Guest) Size() int { return len(g.mem.b) }

// resume starts the workload from cpu (the zero value on a fresh guest)
// and returns the guest's own view of how long it was stopped: now minus
// its last heartbeat (0 on a fresh guest).
func (g *Guest) resume(cpu CPUState) (gap time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel != nil {
		return 0
	}
	now := g.clock.Now()
	if !cpu.LastBeat.IsZero() {
		gap = now.Sub(cpu.LastBeat)
	}
	cpu.LastBeat = now // the first beat: the gap is not dirtying time
	g.cpu = cpu
	if g.rng == nil {
		g.rng = rand.New(rand.NewPCG(cpu.Seed, cpu.Touches))
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel, g.done = cancel, make(chan struct{})
	t := g.clock.NewTicker(beatInterval)
	done := g.done
	go func() {
		defer close(done)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.Chan():
				g.beat(now)
			}
		}
	}()
	return gap
}

// pause stops the workload and returns its state; the memory no longer
// changes until resume.
func (g *Guest) pause() CPUState {
	g.mu.Lock()
	cancel, done := g.cancel, g.done
	g.cancel = nil
	g.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cpu
}

// state is the workload's state now.
func (g *Guest) state() CPUState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cpu
}

// running reports whether the workload runs.
func (g *Guest) running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cancel != nil
}

// setThrottle holds back a share of the dirty rate (auto-converge) and
// caps it (dirty-rate limit; 0: none).
func (g *Guest) setThrottle(share, limit float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.throttle, g.limit = min(max(share, 0), 0.99), limit
}

// beat is one tick of the guest: the heartbeat, then the touches due.
func (g *Guest) beat(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	dt := beatInterval.Seconds()
	if !g.cpu.LastBeat.IsZero() {
		dt = min(now.Sub(g.cpu.LastBeat).Seconds(), 1) // a long stall does not burst
	}
	g.cpu.LastBeat = now
	rate := g.wl.Rate * (1 - g.throttle)
	if g.limit > 0 {
		rate = min(rate, g.limit)
	}
	g.owed += rate * dt / PageSize
	n := int(g.owed)
	g.owed -= float64(n)
	for range n {
		if !g.touch() {
			g.owed = 0
			return
		}
	}
}

// touch dirties one page; false once an "once" workload has done its pass.
func (g *Guest) touch() bool {
	var p int
	switch g.wl.Pattern {
	case "random":
		p = g.rng.IntN(g.hot)
		off := counterBytes + g.rng.IntN(PageSize-counterBytes)
		g.mem.b[p*PageSize+off]++
	default: // sequential, once
		if g.wl.Pattern == "once" && g.cpu.Pass > 0 {
			return false
		}
		p = g.cpu.Cursor
		g.mem.b[p*PageSize]++
		if g.cpu.Cursor++; g.cpu.Cursor == g.hot {
			g.cpu.Cursor, g.cpu.Pass = 0, g.cpu.Pass+1
		}
	}
	g.cpu.Touches++
	if n := g.loseDirtyEvery; n > 0 && g.cpu.Touches%n == 0 {
		return true
	}
	g.dirty.set(p) // after the write: see bitmap
	return true
}

// free unmaps the guest's memory; the workload must be paused.
func (g *Guest) free() error {
	g.pause()
	return g.mem.free()
}
