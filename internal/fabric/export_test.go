package fabric

// White-box views for the external tests.

// ProxyAddrs lists the per-link proxies' listen addresses.
func ProxyAddrs(f *Fabric) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.proxies {
		out = append(out, p.ln.Addr().String())
	}
	return out
}

// Conns counts the connections open through the proxies and in the
// process.
func Conns(f *Fabric) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.proxies {
		n += p.connCount()
	}
	for _, l := range f.links {
		n += l.connCount()
	}
	return n
}

// FastPaths counts the directions of connections on the fast path now
// (two per unshaped connection): a proxied direction's io.Copy, or an
// in-process direction the rules leave alone whose Write has no shaped
// writer left.
func FastPaths(f *Fabric) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.proxies {
		n += p.fastCount()
	}
	rs := f.rules.Load()
	for _, l := range f.links {
		l.mu.Lock()
		for c := range l.conns {
			if c.unshaped(dirDown, rs) {
				n++
			}
			if c.unshaped(dirUp, rs) && !c.spelling.Load() {
				n++
			}
		}
		l.mu.Unlock()
	}
	return n
}
