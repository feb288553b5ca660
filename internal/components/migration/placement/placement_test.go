package placement

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func pool(t *testing.T, hosts []Host, guests []Guest, r Rules) *Pool {
	t.Helper()
	p, err := NewPool(hosts, guests, r, DefaultWeights)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hosts(n int, capacity int64) []Host {
	out := make([]Host, n)
	for i := range out {
		out[i] = Host{ID: fmt.Sprintf("host-%d", i+1), Capacity: capacity, Up: true}
	}
	return out
}

func TestPlaceBalancesAndRespectsCapacity(t *testing.T) {
	// host-1 holds three guests, host-2 one, host-3 none; host-3 is full.
	hs := hosts(3, 4<<30)
	hs[2].Capacity = 256 << 20
	gs := []Guest{{"a", 1 << 30, 0}, {"b", 1 << 30, 0}, {"c", 1 << 30, 0}, {"d", 1 << 30, 1}}
	p := pool(t, hs, gs, Rules{})
	d, err := p.Place("a")
	if err != nil {
		t.Fatal(err)
	}
	if d.To != 1 || !strings.Contains(d.Reason, "host-3 full") {
		t.Fatalf("placed a on %d (%s), want host-2 (host-3 full)", d.To, d.Reason)
	}
	p.Move("a", d.To)
	if p.Committed(0) != 2<<30 || p.Committed(1) != 2<<30 {
		t.Fatalf("committed %d %d after the move", p.Committed(0), p.Committed(1))
	}
	p.SetUp(1, false)
	if _, err := p.Place("b"); !errors.Is(err, ErrNoHost) || !strings.Contains(err.Error(), "host-2 down") {
		t.Fatalf("with host-2 down and host-3 full: %v", err)
	}
}

func TestPlaceAffinityAndAntiAffinity(t *testing.T) {
	gs := []Guest{{"web-1", 1, 0}, {"web-2", 1, 1}, {"db", 1, 2}, {"cache", 1, 0}}
	p := pool(t, hosts(4, 0), gs, Rules{Affinity: [][]string{{"db", "cache"}}, AntiAffinity: [][]string{{"web-1", "web-2"}}})
	d, err := p.Place("db")
	if err != nil || d.To != 0 {
		t.Fatalf("db went to %d (%v), want host-1 with its affinity partner", d.To, err)
	}
	d, err = p.Place("web-1")
	if err != nil || d.To == 1 {
		t.Fatalf("web-1 went to %d (%v): onto web-2's host", d.To, err)
	}
	if !strings.Contains(d.Reason, "host-2 anti-affinity") {
		t.Fatalf("reason %q does not name the rule", d.Reason)
	}
}

func TestPlacePrefersFastLinks(t *testing.T) {
	gs := []Guest{{"g", 1, 0}}
	p := pool(t, hosts(3, 0), gs, Rules{})
	p.SetBandwidth(0, 1, 10<<20)
	p.SetBandwidth(0, 2, 1<<30)
	if d, _ := p.Place("g"); d.To != 2 {
		t.Fatalf("placed on %d, want the 1 GiB/s link's host", d.To)
	}
}

func TestPlaceIsDeterministic(t *testing.T) {
	gs := []Guest{{"g", 1, 0}}
	p := pool(t, hosts(5, 0), gs, Rules{})
	first, _ := p.Place("g")
	for range 10 {
		if d, _ := p.Place("g"); d.To != first.To {
			t.Fatal("same state, different placement")
		}
	}
}

func TestBadPools(t *testing.T) {
	for _, tc := range []struct {
		guests []Guest
		rules  Rules
		want   string
	}{
		{[]Guest{{"g", 1, 7}}, Rules{}, "on host 7"},
		{[]Guest{{"g", 1, 0}, {"g", 1, 1}}, Rules{}, "twice"},
		{[]Guest{{"g", 1, 0}}, Rules{AntiAffinity: [][]string{{"g", "nope"}}}, `unknown guest "nope"`},
	} {
		if _, err := NewPool(hosts(2, 0), tc.guests, tc.rules, DefaultWeights); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
		}
	}
}

// BenchmarkPlace places every guest of a fleet once (and moves it there).
// Target: 1,000 guests on 100 hosts in 10 ms, 100 guests in 1 ms.
func BenchmarkPlace(b *testing.B) {
	for _, fleet := range []struct{ guests, hosts int }{{100, 10}, {1000, 100}} {
		b.Run(fmt.Sprintf("guests=%d/hosts=%d", fleet.guests, fleet.hosts), func(b *testing.B) {
			hs := make([]Host, fleet.hosts)
			for i := range hs {
				hs[i] = Host{ID: fmt.Sprintf("host-%d", i), Capacity: 64 << 30, Up: true}
			}
			gs := make([]Guest, fleet.guests)
			var anti [][]string
			for i := range gs {
				gs[i] = Guest{ID: fmt.Sprintf("guest-%d", i), Size: 16 << 20, Host: i % fleet.hosts}
				if i%10 == 1 {
					anti = append(anti, []string{gs[i-1].ID, gs[i].ID})
				}
			}
			p, err := NewPool(hs, gs, Rules{AntiAffinity: anti}, DefaultWeights)
			if err != nil {
				b.Fatal(err)
			}
			for i := range hs {
				for j := range hs {
					p.SetBandwidth(i, j, float64(((i*7+j*13)%100+1)<<20))
				}
			}
			for b.Loop() {
				for _, g := range gs {
					d, err := p.Place(g.ID)
					if err != nil {
						b.Fatal(err)
					}
					p.Move(g.ID, d.To)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/fleet")
		})
	}
}

// A host with MaxIncoming migrations arriving takes no more, however fast
// its link: the next best host gets the guest, and the host is eligible
// again once one of them ends.
func TestPlaceBoundsArrivingMigrations(t *testing.T) {
	hs := hosts(3, 0)
	hs[2].MaxIncoming = 2
	gs := []Guest{{"a", 1, 0}, {"b", 1, 0}, {"c", 1, 0}}
	p := pool(t, hs, gs, Rules{})
	p.SetBandwidth(0, 2, 1<<30)
	var dones []func(bool)
	for _, g := range []string{"a", "b"} {
		d, err := p.Place(g)
		if err != nil || d.To != 2 {
			t.Fatalf("%s placed on %d (%v), want host-3 (fastest link)", g, d.To, err)
		}
		dones = append(dones, p.Reserve(g, d.To))
	}
	d, err := p.Place("c")
	if err != nil || d.To != 1 || !strings.Contains(d.Reason, "host-3 busy") {
		t.Fatalf("c placed on %d (%v, %q), want host-2 with host-3 busy", d.To, err, d.Reason)
	}
	dones[0](true)
	if d, _ := p.Place("c"); d.To != 2 {
		t.Fatalf("c placed on %d after a migration to host-3 ended, want host-3", d.To)
	}
}
