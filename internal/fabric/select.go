package fabric

import (
	"fmt"
	"slices"
	"strings"
)

// Link is a directed link: the connections node From opens to node To.
type Link struct {
	From, To string
}

func (l Link) String() string { return l.From + "->" + l.To }

// Selector picks links by their end points. It matches links that exist now
// and links created later, so a fault in force also covers a node's new
// connections.
type Selector struct {
	desc  string
	match func(from, to string) bool
}

// Match reports whether l is selected.
func (s Selector) Match(l Link) bool { return s.match != nil && s.match(l.From, l.To) }

// String describes the selection (for logs and journals).
func (s Selector) String() string { return s.desc }

// Links selects exactly the given directed links.
func Links(ls ...Link) Selector {
	set := make(map[Link]bool, len(ls))
	names := make([]string, 0, len(ls))
	for _, l := range ls {
		set[l] = true
		names = append(names, l.String())
	}
	return Selector{
		desc:  "links(" + strings.Join(names, ",") + ")",
		match: func(from, to string) bool { return set[Link{from, to}] },
	}
}

// Within selects every link between two nodes of one component, as
// DialerFor names them (component/node).
func Within(component string) Selector {
	prefix := component + "/"
	return Selector{
		desc:  "within(" + component + ")",
		match: func(from, to string) bool { return strings.HasPrefix(from, prefix) && strings.HasPrefix(to, prefix) },
	}
}

// Isolate selects every link to or from any of nodes.
func Isolate(nodes ...string) Selector {
	set := toSet(nodes)
	return Selector{
		desc:  "isolate(" + strings.Join(nodes, ",") + ")",
		match: func(from, to string) bool { return set[from] || set[to] },
	}
}

// Split selects every link between group a and group b, both ways: a
// symmetric partition of a from b. Links inside a group are not selected.
func Split(a, b []string) Selector {
	sa, sb := toSet(a), toSet(b)
	return Selector{
		desc: fmt.Sprintf("split([%s]|[%s])", strings.Join(a, ","), strings.Join(b, ",")),
		match: func(from, to string) bool {
			return (sa[from] && sb[to]) || (sb[from] && sa[to])
		},
	}
}

// OneWay selects the single directed link from -> to; to -> from is not
// selected.
func OneWay(from, to string) Selector {
	return Selector{
		desc:  "oneway(" + from + "->" + to + ")",
		match: func(f, t string) bool { return f == from && t == to },
	}
}

// Union selects the links any of sels selects.
func Union(sels ...Selector) Selector {
	sels = slices.Clone(sels)
	descs := make([]string, 0, len(sels))
	for _, s := range sels {
		descs = append(descs, s.desc)
	}
	return Selector{
		desc: strings.Join(descs, "+"),
		match: func(from, to string) bool {
			for _, s := range sels {
				if s.match != nil && s.match(from, to) {
					return true
				}
			}
			return false
		},
	}
}

func toSet(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}
