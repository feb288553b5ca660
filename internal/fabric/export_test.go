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

// ProxiedConns counts the connections open through the proxies.
func ProxiedConns(f *Fabric) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.proxies {
		n += p.connCount()
	}
	return n
}

// FastPaths counts the directions of proxied connections that are on the
// fast path now (two per unshaped connection).
func FastPaths(f *Fabric) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.proxies {
		n += p.fastCount()
	}
	return n
}
