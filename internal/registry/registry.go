// Package registry is the ordered, name-keyed set that the component and
// fault kind registries share. Entries keep registration order: the order
// components are built and started, the order kinds are listed.
package registry

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// Ordered holds named entries in registration order. The zero value is
// empty and ready to use; it is safe for concurrent use.
type Ordered[T any] struct {
	mu    sync.RWMutex
	names []string
	items []T
}

// Add appends an entry. An empty or duplicate name is an error: it is a
// programming mistake, and silently replacing the first would hide it.
func (o *Ordered[T]) Add(name string, v T) error {
	if name == "" {
		return errors.New("empty name")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if slices.Contains(o.names, name) {
		return fmt.Errorf("%q registered twice", name)
	}
	o.names = append(o.names, name)
	o.items = append(o.items, v)
	return nil
}

// Get returns the named entry.
func (o *Ordered[T]) Get(name string) (T, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if i := slices.Index(o.names, name); i >= 0 {
		return o.items[i], true
	}
	var zero T
	return zero, false
}

// All returns the entries in registration order.
func (o *Ordered[T]) All() []T {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return slices.Clone(o.items)
}

// Names returns the names, sorted.
func (o *Ordered[T]) Names() []string {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := slices.Clone(o.names)
	sort.Strings(out)
	return out
}
