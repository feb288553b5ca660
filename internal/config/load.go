package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

const (
	// maxNodes bounds the nodes visited while decoding one document: aliases
	// let a few lines expand exponentially ("billion laughs").
	maxNodes = 1_000_000
	// maxFileSize bounds what Load reads; a real config is a few KiB.
	maxFileSize = 16 << 20
)

// Load reads and parses the config file at path; see Parse. A file that cannot
// be read is a plain one-line error naming it.
func Load(path string, checks ...Checker) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read config %s: larger than %d MiB", path, maxFileSize>>20)
	}
	return Parse(data, checks...)
}

// Parse overlays the YAML document in data on Default() and validates the
// result. Decoding is strict: unknown keys, duplicate keys and values of the
// wrong type are problems. Structs merge key by key with the defaults, while
// maps and lists given by the user replace the default ones whole (a mix
// {put: 1} means only puts, not puts added to the default mix); null clears
// a map, list, string or optional section (`random: ~` turns random faults
// off) and leaves a section's defaults alone.
//
// On any problem Parse returns nil and Errors listing all of them. An empty
// document yields the defaults; more than one document is an error.
func Parse(data []byte, checks ...Checker) (*Config, error) {
	cfg := Default()
	root, err := parseNode(data)
	if err != nil {
		var ps problems
		ps.add("", err.Error())
		return nil, ps.list
	}
	d := decoder{}
	if root != nil {
		d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	}
	if err := cfg.Validate(checks...); err != nil {
		var verrs Errors
		errors.As(err, &verrs)
		for _, p := range verrs {
			// A value that failed to decode kept its default (or zero, in a
			// map or list); do not also blame it for that.
			if !d.covers(p.Path) {
				d.ps.addProblem(p)
			}
		}
	}
	if err := d.ps.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseNode returns the root node of the single document in data, or nil for
// an empty one.
func parseNode(data []byte) (root *yaml.Node, err error) {
	// The YAML parser is third-party code fed untrusted input; a panic in it
	// must become an error, not take soakd down.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, err
	}
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		// A stray trailing "---" adds an empty document; tolerate it.
		if r := docRoot(&extra); r != nil && !isNull(r) {
			return nil, fmt.Errorf("yaml: line %d: a second document; a config file holds exactly one", extra.Line)
		}
	}
	return docRoot(&doc), nil
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode {
		return doc
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decoder walks a yaml.Node tree and a reflect.Value together, so that every
// problem is reported with its field path and decoding goes on after it.
type decoder struct {
	ps      problems
	nodes   int
	merging map[*yaml.Node]bool // mappings whose merge keys are being expanded
	failed  map[string]bool     // paths of ps.list, built by covers
}

func (d *decoder) fail(path, format string, args ...any) {
	d.ps.add(path, fmt.Sprintf(format, args...))
}

// spend charges n visited nodes against maxNodes and reports whether the
// budget still holds; the first overrun is reported once.
func (d *decoder) spend(n int) bool {
	if d.nodes > maxNodes {
		return false
	}
	d.nodes += n
	if d.nodes > maxNodes {
		d.fail("", "document too large: more than %d nodes after expanding aliases", maxNodes)
		return false
	}
	return true
}

// covers reports whether a problem at path is explained by a decoding
// problem at path or above it.
func (d *decoder) covers(path string) bool {
	if d.failed == nil {
		d.failed = map[string]bool{}
		for _, p := range d.ps.list {
			d.failed[p.Path] = true
		}
	}
	if d.failed[""] || d.failed[path] {
		return true
	}
	// Check every ancestor: "a.b[2].c" has "a.b[2]", "a.b" and "a".
	for i := len(path) - 1; i > 0; i-- {
		if (path[i] == '.' || path[i] == '[') && d.failed[path[:i]] {
			return true
		}
	}
	return false
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	// The parser never anchors an alias, so one step suffices; the bound is
	// only a guard.
	for i := 0; i < 8 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode sets v from n. Recursion follows the Config type tree, which is
// finite, so alias cycles in the document cannot make it loop.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend(1) {
		return
	}
	n = resolveAlias(n)
	if n.Kind == yaml.AliasNode {
		d.fail(path, "unresolved alias")
		return
	}
	if isNull(n) {
		d.null(v, path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(path, "%s", err.Error())
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Pointer:
		// Overlay a copy of the default so the caller's value is not
		// mutated through a shared pointer.
		p := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			p.Elem().Set(v.Elem())
		}
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.String:
		if s, ok := d.text(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.text(n, path, "true or false"); ok {
			switch strings.ToLower(s) {
			case "true":
				v.SetBool(true)
			case "false":
				v.SetBool(false)
			default:
				d.fail(path, "cannot parse %q as a boolean (want true or false)", s)
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if s, ok := d.text(n, path, "an integer"); ok {
			i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, v.Type().Bits())
			if err != nil {
				d.fail(path, "cannot parse %q as an integer%s", s, rangeNote(err))
				return
			}
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if s, ok := d.text(n, path, "a non-negative integer"); ok {
			u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, v.Type().Bits())
			if err != nil {
				d.fail(path, "cannot parse %q as a non-negative integer%s", s, rangeNote(err))
				return
			}
			v.SetUint(u)
		}
	case reflect.Float32, reflect.Float64:
		if s, ok := d.text(n, path, "a number"); ok {
			f, err := strconv.ParseFloat(s, v.Type().Bits())
			// Inf and NaN parse but no setting means them, and NaN would
			// slip past every range check.
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				d.fail(path, "cannot parse %q as a number", s)
				return
			}
			v.SetFloat(f)
		}
	default:
		// Only reachable if types.go gains a kind this walker lacks.
		d.fail(path, "cannot decode into %s", v.Type())
	}
}

func rangeNote(err error) string {
	if errors.Is(err, strconv.ErrRange) {
		return ": out of range"
	}
	return ""
}

// null applies an explicit null (`key:`, `key: ~`).
func (d *decoder) null(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.String:
		v.SetZero()
	case reflect.Struct:
		// An empty section, e.g. one whose keys are all commented out,
		// keeps its defaults.
	default:
		d.fail(path, "missing value")
	}
}

// text returns the value of a scalar node, or reports what was found instead.
func (d *decoder) text(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := fieldIndex(v.Type())
	for _, kv := range d.pairs(n, path) {
		p := field(path, kv.key)
		i, ok := fields[kv.key]
		if !ok {
			d.fail(p, "unknown field")
			continue
		}
		d.decode(kv.val, v.Field(i), p)
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(path, "cannot decode into %s", t)
		return
	}
	pairs := d.pairs(n, path)
	if len(pairs) == 0 {
		// nil, not empty: a config then marshals and parses back equal.
		v.SetZero()
		return
	}
	m := reflect.MakeMapWithSize(t, len(pairs))
	for _, kv := range pairs {
		e := reflect.New(t.Elem()).Elem()
		d.decode(kv.val, e, field(path, kv.key))
		m.SetMapIndex(reflect.ValueOf(kv.key).Convert(t.Key()), e)
	}
	v.Set(m)
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, "expected a list, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero()
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.decode(c, s.Index(i), index(path, i))
	}
	v.Set(s)
}

type pair struct {
	key string
	val *yaml.Node
}

// pairs returns the entries of mapping n with YAML merge keys (<<: *base)
// expanded: merges are shallow and explicit keys win, as in YAML 1.1.
// Duplicate and non-string keys are reported and dropped.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	if !d.spend(len(n.Content) / 2) {
		return nil
	}
	var explicit, merged []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(val, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, "mapping key must be a string, got %s", kindName(k))
			continue
		}
		if seen[k.Value] {
			d.fail(field(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		explicit = append(explicit, pair{k.Value, val})
	}
	if len(merged) == 0 {
		return explicit
	}
	out := make([]pair, 0, len(merged)+len(explicit))
	for _, kv := range merged {
		// Among merged mappings the first to give a key wins.
		if !seen[kv.key] {
			seen[kv.key] = true
			out = append(out, kv)
		}
	}
	return append(out, explicit...)
}

// merge returns the entries a merge key's value contributes: a mapping or a
// list of mappings.
func (d *decoder) merge(val *yaml.Node, path string) []pair {
	val = resolveAlias(val)
	var maps []*yaml.Node
	switch val.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{val}
	case yaml.SequenceNode:
		for _, c := range val.Content {
			maps = append(maps, resolveAlias(c))
		}
	}
	var out []pair
	for _, m := range maps {
		if m.Kind != yaml.MappingNode {
			d.fail(path, "merge key << needs a mapping or a list of mappings, got %s", kindName(m))
			continue
		}
		if d.merging[m] {
			d.fail(path, "merge key << refers to a mapping that contains it")
			continue
		}
		if d.merging == nil {
			d.merging = map[*yaml.Node]bool{}
		}
		d.merging[m] = true
		out = append(out, d.pairs(m, path)...)
		delete(d.merging, m)
	}
	if len(maps) == 0 {
		d.fail(path, "merge key << needs a mapping or a list of mappings, got %s", kindName(val))
	}
	return out
}

var fieldCache sync.Map // reflect.Type → map[string]int

// fieldIndex maps a struct type's YAML keys to field indices.
func fieldIndex(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	fieldCache.Store(t, m)
	return m
}
