// Package placement is the migration fleet's pure placement core: given the
// host pool, the guests on it and the rules, it picks where a guest goes.
// No goroutines, clocks or I/O: the component calls it and journals the
// decision with its reason.
//
// A destination must be up, other than the guest's host, have room
// (committed memory plus the guest within the host's capacity), take
// another arriving migration (MaxIncoming), and break no anti-affinity
// rule (no guest of the same anti-affinity group there).
// Among those, each host is scored:
//
//	score = Balance  * (1 - committed share after the move)
//	      + LinkCost * (bandwidth from the source / best bandwidth known)
//	      + Affinity * (share of the guest's affinity group already there)
//
// and the highest wins; ties go to the lower host index, so the same state
// always places the same way.
package placement

import (
	"errors"
	"fmt"
	"strings"
)

// Host is one host of the pool.
type Host struct {
	ID       string
	Capacity int64 // bytes of guest memory it may hold (0: unlimited)
	Up       bool
	// MaxIncoming bounds the migrations arriving at once (0: unlimited),
	// as a hypervisor bounds concurrent live migrations.
	MaxIncoming int
}

// Guest is one guest and where it runs.
type Guest struct {
	ID   string
	Size int64
	Host int // index into the pool's hosts
}

// Rules are the affinity (keep together) and anti-affinity (keep apart)
// groups, by guest id.
type Rules struct {
	Affinity     [][]string
	AntiAffinity [][]string
}

// Weights of the score's terms.
type Weights struct {
	Balance, LinkCost, Affinity float64
}

// DefaultWeights balance the pool first, then prefer fast links and
// affinity.
var DefaultWeights = Weights{Balance: 1, LinkCost: 0.5, Affinity: 2}

// Pool is the state placement decides on. Build it with NewPool; Move
// keeps it current as guests move.
type Pool struct {
	hosts  []Host
	guests []Guest
	byID   map[string]int
	w      Weights
	// committed memory per host (reservations included); migrations
	// arriving per host; group members per host
	committed []int64
	incoming  []int
	aff       [][]int       // guest → its affinity groups
	anti      [][]int       // guest → its anti-affinity groups
	affOn     []map[int]int // per host: affinity group → members there
	antiOn    []map[int]int // per host: anti-affinity group → members there
	affSize   []int
	// bandwidth[from][to] in bytes/s, 0 when unknown
	bandwidth [][]float64
}

// ErrNoHost: no host can take the guest.
var ErrNoHost = errors.New("placement: no host can take the guest")

// NewPool builds the state. Guests must name hosts of the pool.
func NewPool(hosts []Host, guests []Guest, rules Rules, w Weights) (*Pool, error) {
	p := &Pool{hosts: hosts, guests: guests, byID: make(map[string]int, len(guests)), w: w,
		committed: make([]int64, len(hosts)), incoming: make([]int, len(hosts)), aff: make([][]int, len(guests)), anti: make([][]int, len(guests)),
		affOn: make([]map[int]int, len(hosts)), antiOn: make([]map[int]int, len(hosts)),
		bandwidth: make([][]float64, len(hosts))}
	for i := range hosts {
		p.affOn[i], p.antiOn[i] = map[int]int{}, map[int]int{}
		p.bandwidth[i] = make([]float64, len(hosts))
	}
	for i, g := range guests {
		if g.Host < 0 || g.Host >= len(hosts) {
			return nil, fmt.Errorf("placement: guest %s on host %d of %d", g.ID, g.Host, len(hosts))
		}
		if _, dup := p.byID[g.ID]; dup {
			return nil, fmt.Errorf("placement: guest %s listed twice", g.ID)
		}
		p.byID[g.ID] = i
		p.committed[g.Host] += g.Size
	}
	var err error
	if p.aff, p.affSize, err = p.groups(rules.Affinity, "affinity"); err != nil {
		return nil, err
	}
	if p.anti, _, err = p.groups(rules.AntiAffinity, "anti_affinity"); err != nil {
		return nil, err
	}
	for i, g := range guests {
		for _, a := range p.aff[i] {
			p.affOn[g.Host][a]++
		}
		for _, a := range p.anti[i] {
			p.antiOn[g.Host][a]++
		}
	}
	return p, nil
}

func (p *Pool) groups(gs [][]string, what string) ([][]int, []int, error) {
	of := make([][]int, len(p.guests))
	sizes := make([]int, len(gs))
	for gi, g := range gs {
		for _, id := range g {
			i, ok := p.byID[id]
			if !ok {
				return nil, nil, fmt.Errorf("placement: %s group %d names unknown guest %q", what, gi, id)
			}
			of[i] = append(of[i], gi)
		}
		sizes[gi] = len(g)
	}
	return of, sizes, nil
}

// SetBandwidth records a link's measured bandwidth (bytes/s).
func (p *Pool) SetBandwidth(from, to int, bw float64) { p.bandwidth[from][to] = bw }

// SetUp marks a host up or down.
func (p *Pool) SetUp(h int, up bool) { p.hosts[h].Up = up }

// Decision is a placement and why.
type Decision struct {
	Guest  string
	From   int
	To     int
	Score  float64
	Reason string
}

// Place picks the destination of guest id's next migration.
func (p *Pool) Place(id string) (Decision, error) {
	gi, ok := p.byID[id]
	if !ok {
		return Decision{}, fmt.Errorf("placement: unknown guest %q", id)
	}
	g := p.guests[gi]
	d := Decision{Guest: id, From: g.Host, To: -1}
	best := 0.0
	for _, bw := range p.bandwidth[g.Host] {
		best = max(best, bw)
	}
	total := int64(0)
	for _, c := range p.committed {
		total += c
	}
	var refused []string
	var terms [3]float64
	for h, host := range p.hosts {
		switch {
		case h == g.Host:
			continue
		case !host.Up:
			refused = append(refused, host.ID+" down")
			continue
		case host.Capacity > 0 && p.committed[h]+g.Size > host.Capacity:
			refused = append(refused, host.ID+" full")
			continue
		case host.MaxIncoming > 0 && p.incoming[h] >= host.MaxIncoming:
			refused = append(refused, host.ID+" busy")
			continue
		case p.breaksAnti(gi, h):
			refused = append(refused, host.ID+" anti-affinity")
			continue
		}
		score, t := p.score(gi, h, best, total)
		if d.To < 0 || score > d.Score {
			d.To, d.Score, terms = h, score, t
		}
	}
	if d.To < 0 {
		return d, fmt.Errorf("%w %s (%s)", ErrNoHost, id, strings.Join(refused, ", "))
	}
	d.Reason = fmt.Sprintf("balance %.2f, link %.2f, affinity %.2f", terms[0], terms[1], terms[2])
	if len(refused) > 0 {
		d.Reason += "; refused " + strings.Join(refused, ", ")
	}
	return d, nil
}

func (p *Pool) breaksAnti(gi, h int) bool {
	for _, a := range p.anti[gi] {
		if p.antiOn[h][a] > 0 {
			return true
		}
	}
	return false
}

// score rates host h for guest gi; total is the pool's committed memory.
func (p *Pool) score(gi, h int, bestBW float64, total int64) (float64, [3]float64) {
	g := p.guests[gi]
	balance := 1.0
	if c := p.hosts[h].Capacity; c > 0 {
		balance = 1 - float64(p.committed[h]+g.Size)/float64(c)
	} else if total > 0 {
		// Unlimited hosts balance by their share of the pool's memory.
		balance = 1 - float64(p.committed[h]+g.Size)/float64(total+g.Size)
	}
	link := 0.0
	if bestBW > 0 {
		link = p.bandwidth[g.Host][h] / bestBW
	}
	aff := 0.0
	for _, a := range p.aff[gi] {
		if n := p.affSize[a] - 1; n > 0 {
			aff += float64(p.affOn[h][a]) / float64(n)
		}
	}
	return p.w.Balance*balance + p.w.LinkCost*link + p.w.Affinity*aff, [3]float64{balance, link, aff}
}

// Reserve holds room for guest id on host to while it migrates there, so
// concurrent placements see the destination as taken; done releases it,
// or, when the guest moved, turns it into the move.
func (p *Pool) Reserve(id string, to int) (done func(moved bool)) {
	gi, ok := p.byID[id]
	if !ok || to < 0 || to >= len(p.hosts) {
		return func(bool) {}
	}
	size := p.guests[gi].Size
	p.committed[to] += size
	p.incoming[to]++
	return func(moved bool) {
		p.committed[to] -= size
		p.incoming[to]--
		if moved {
			p.Move(id, to)
		}
	}
}

// Move records that guest id now runs on host to.
func (p *Pool) Move(id string, to int) {
	gi, ok := p.byID[id]
	if !ok || to < 0 || to >= len(p.hosts) {
		return
	}
	g := &p.guests[gi]
	p.committed[g.Host] -= g.Size
	p.committed[to] += g.Size
	for _, a := range p.aff[gi] {
		p.affOn[g.Host][a]--
		p.affOn[to][a]++
	}
	for _, a := range p.anti[gi] {
		p.antiOn[g.Host][a]--
		p.antiOn[to][a]++
	}
	g.Host = to
}

// Committed is the guest memory on host h.
func (p *Pool) Committed(h int) int64 { return p.committed[h] }
