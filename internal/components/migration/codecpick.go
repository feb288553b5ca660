package migration

import (
	"runtime"

	"github.com/soakd/soakd/internal/components/migration/codec"
)

// codecSample bounds the guest memory the codecs are measured on at start.
const codecSample = 2 << 20

// autoCodec reports whether each migration chooses its codec: compression
// auto, or none in internet mode.
func (c *Cluster) autoCodec() bool {
	return c.cfg.Compression == "auto" || (c.cfg.Mode == "internet" && c.cfg.Compression == "none")
}

// appendSample adds g's non-zero pages to sample, up to codecSample bytes.
func appendSample(sample []byte, g *Guest) []byte {
	for p := 0; p < g.Pages() && len(sample) < codecSample; p++ {
		if page := g.mem.page(p); !isZero(page) {
			sample = append(sample, page...)
		}
	}
	return sample
}

// measureCodecs profiles every codec on the guests' non-zero pages (zero
// pages go as markers, whatever the codec), when the codec is chosen per
// migration.
func (c *Cluster) measureCodecs() error {
	if !c.autoCodec() {
		return nil
	}
	sample := make([]byte, 0, codecSample)
	for _, h := range c.hosts {
		lh, ok := h.(*localHost)
		if !ok {
			continue
		}
		for _, id := range lh.guestIDs() {
			g, _ := lh.guest(id)
			sample = appendSample(sample, g)
		}
	}
	if len(sample) == 0 && len(c.hosts) > 0 {
		if _, local := c.hosts[0].(*localHost); !local {
			// The guests live in the host processes: sample one built here
			// from the same spec, then free it.
			g, err := c.guestSpec(0, 0).build(c.clock)
			if err != nil {
				return err
			}
			sample = appendSample(sample, g)
			_ = g.free()
		}
	}
	if len(sample) == 0 {
		sample = make([]byte, PageSize) // all-zero guests: any codec will do
	}
	var err error
	c.profiles, err = codec.Measure(sample, codec.Names())
	if err == nil {
		c.log.Info("codecs measured for the per-migration choice", "profiles", c.profiles)
	}
	return err
}

// chooseCodec picks the codec for a migration over link k: the configured
// one, or with auto the one that moves guest memory fastest over the
// link's capacity estimate (internet mode starts from the configured
// link; otherwise the first migration on a link goes uncompressed and
// measures it).
func (c *Cluster) chooseCodec(k [2]int) codec.Choice {
	if !c.autoCodec() {
		return codec.Choice{Name: c.cfg.Compression, Reason: "configured"}
	}
	c.mu.Lock()
	capacity, ok := c.capacity[k]
	c.mu.Unlock()
	if !ok && c.cfg.Mode == "internet" {
		capacity = c.cfg.Internet.Bandwidth.PerSecond()
	}
	workers := min(c.cfg.Streams, runtime.GOMAXPROCS(0), 8)
	ch, err := codec.Choose(capacity, c.profiles, workers)
	if err != nil {
		return codec.Choice{Name: "none", Reason: "no choice: " + err.Error()}
	}
	return ch
}

// learnCapacity folds a migration's link estimate into link k's.
func (c *Cluster) learnCapacity(k [2]int, rep Report) {
	bw := rep.LinkBandwidth()
	if bw <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.capacity[k]; ok {
		bw = 0.5*old + 0.5*bw
	}
	c.capacity[k] = bw
}
