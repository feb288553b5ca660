package check

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/components"
)

// The text form of a KV history used by the testdata files (see
// testdata/README.md), one op per line:
//
//	c0 put x 1 call=0ms ret=10ms ok          ok | unknown | failed
//	c1 get x call=20ms ret=30ms -> 1         -> <value> | -> <absent> | unknown | failed
//	c2 cas x 1->2 call=40ms ret=50ms swapped swapped | not-swapped | unknown | failed
//
// Times are offsets from the checker's start (a Go duration; a bare number
// is milliseconds). ret=? (unknown outcome only) means the op never
// returned: its Return is its Call. Values are bare words or Go-quoted
// strings. A word starting with # starts a comment.

// parseOps parses a history, one op per line.
func parseOps(epoch time.Time, input string) ([]KVOp, error) {
	var ops []KVOp
	for i, line := range strings.Split(input, "\n") {
		op, ok, err := parseOp(epoch, line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %w", i+1, strings.TrimSpace(line), err)
		}
		if ok {
			ops = append(ops, op)
		}
	}
	return ops, nil
}

func parseOp(epoch time.Time, line string) (KVOp, bool, error) {
	toks, err := tokenize(line)
	if err != nil || len(toks) == 0 {
		return KVOp{}, false, err
	}
	var op KVOp
	if len(toks) < 5 {
		return op, false, errors.New("want: c<N> put|get|cas <key> [value] call=<t> ret=<t> <outcome>")
	}
	id, err := strconv.Atoi(strings.TrimPrefix(toks[0], "c"))
	if !strings.HasPrefix(toks[0], "c") || err != nil {
		return op, false, fmt.Errorf("client %q: want c<N>", toks[0])
	}
	op.ClientID, op.Op = id, toks[1]
	if op.Key, err = parseValue(toks[2]); err != nil {
		return op, false, fmt.Errorf("key: %w", err)
	}
	rest := toks[3:]
	switch op.Op {
	case "put":
		v, err := parseValue(rest[0])
		if err != nil {
			return op, false, err
		}
		op.Value, rest = []byte(v), rest[1:]
	case "cas":
		e, v, err := parseCasArg(rest[0])
		if err != nil {
			return op, false, err
		}
		op.Expect, op.Value, rest = []byte(e), []byte(v), rest[1:]
	case "get":
	default:
		return op, false, fmt.Errorf("op %q: want put, get or cas", op.Op)
	}
	if len(rest) < 3 || !strings.HasPrefix(rest[0], "call=") || !strings.HasPrefix(rest[1], "ret=") {
		return op, false, errors.New("want call=<t> ret=<t> after the key and value")
	}
	call, err := parseOffset(strings.TrimPrefix(rest[0], "call="))
	if err != nil {
		return op, false, err
	}
	op.Call, op.Return = epoch.Add(call), epoch.Add(call)
	neverReturned := rest[1] == "ret=?"
	if !neverReturned {
		ret, err := parseOffset(strings.TrimPrefix(rest[1], "ret="))
		if err != nil {
			return op, false, err
		}
		op.Return = epoch.Add(ret)
	}
	out := rest[2:]
	switch {
	case len(out) == 1 && out[0] == "unknown":
		op.Outcome = components.OutcomeUnknown
	case len(out) == 1 && out[0] == "failed":
		op.Outcome = components.OutcomeFailed
	case op.Op == "put" && len(out) == 1 && out[0] == "ok",
		op.Op == "cas" && len(out) == 1 && out[0] == "not-swapped":
		op.Outcome = components.OutcomeOK
	case op.Op == "cas" && len(out) == 1 && out[0] == "swapped":
		op.Outcome, op.Swapped = components.OutcomeOK, true
	case op.Op == "get" && len(out) == 2 && out[0] == "->":
		op.Outcome = components.OutcomeOK
		if out[1] != "<absent>" {
			v, err := parseValue(out[1])
			if err != nil {
				return op, false, err
			}
			op.Output, op.Found = []byte(v), true
		}
	default:
		return op, false, fmt.Errorf("outcome %q: want %s", strings.Join(out, " "), map[string]string{
			"put": "ok | unknown | failed",
			"get": "-> <value> | -> <absent> | unknown | failed",
			"cas": "swapped | not-swapped | unknown | failed",
		}[op.Op])
	}
	if neverReturned && op.Outcome != components.OutcomeUnknown {
		return op, false, errors.New("ret=? is for unknown outcomes only")
	}
	return op, true, nil
}

// tokenize splits a line at spaces, keeping Go-quoted strings whole and
// dropping a comment (a word starting with #).
func tokenize(line string) ([]string, error) {
	var toks []string
	for {
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			return toks, nil
		}
		var tok strings.Builder
		for line != "" && line[0] != ' ' && line[0] != '\t' {
			if line[0] == '"' {
				q, err := strconv.QuotedPrefix(line)
				if err != nil {
					return nil, fmt.Errorf("bad quoted string in %q", line)
				}
				tok.WriteString(q)
				line = line[len(q):]
				continue
			}
			tok.WriteByte(line[0])
			line = line[1:]
		}
		toks = append(toks, tok.String())
	}
}

// parseValue reads a bare word or one Go-quoted string.
func parseValue(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil || q != s {
			return "", fmt.Errorf("bad quoted value %s", s)
		}
		return strconv.Unquote(q)
	}
	if s == "" || s == "<absent>" || strings.Contains(s, "->") {
		return "", fmt.Errorf("value %q: quote it", s)
	}
	return s, nil
}

// parseCasArg reads expect->value, either side bare or quoted.
func parseCasArg(s string) (expect, value string, err error) {
	split := strings.Index(s, "->")
	if strings.HasPrefix(s, `"`) {
		q, qerr := strconv.QuotedPrefix(s)
		if qerr != nil {
			return "", "", fmt.Errorf("bad quoted value in %s", s)
		}
		split = len(q)
		if !strings.HasPrefix(s[split:], "->") {
			split = -1
		}
	}
	if split < 0 {
		return "", "", fmt.Errorf("cas %q: want <expect>-><value>", s)
	}
	if expect, err = parseValue(s[:split]); err != nil {
		return "", "", err
	}
	value, err = parseValue(s[split+2:])
	return expect, value, err
}

func parseOffset(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("time %q: want a duration such as 10ms", s)
	}
	return d, nil
}

func fmtOffset(d time.Duration) string {
	if d%time.Millisecond == 0 && d < time.Minute && d > -time.Minute {
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}

var bareValue = regexp.MustCompile(`^[A-Za-z0-9_.:/+-]+$`)

func fmtValue(v []byte) string {
	if s := string(v); bareValue.MatchString(s) {
		return s
	}
	return strconv.Quote(string(v))
}

// fmtOp is the text form of op, the inverse of parseOp.
func fmtOp(epoch time.Time, op KVOp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %s %s ", op.ClientID, op.Op, fmtValue([]byte(op.Key)))
	switch op.Op {
	case "put":
		fmt.Fprintf(&b, "%s ", fmtValue(op.Value))
	case "cas":
		fmt.Fprintf(&b, "%s->%s ", fmtValue(op.Expect), fmtValue(op.Value))
	}
	ret := "?"
	if op.Outcome != components.OutcomeUnknown || !op.Return.Equal(op.Call) {
		ret = fmtOffset(op.Return.Sub(epoch))
	}
	fmt.Fprintf(&b, "call=%s ret=%s ", fmtOffset(op.Call.Sub(epoch)), ret)
	switch {
	case op.Outcome != components.OutcomeOK:
		b.WriteString(string(op.Outcome))
	case op.Op == "get" && op.Found:
		fmt.Fprintf(&b, "-> %s", fmtValue(op.Output))
	case op.Op == "get":
		b.WriteString("-> <absent>")
	case op.Op == "cas" && op.Swapped:
		b.WriteString("swapped")
	case op.Op == "cas":
		b.WriteString("not-swapped")
	default:
		b.WriteString("ok")
	}
	return b.String()
}

// An evidence file is porcupine's visualization of one illegal key-window
// (see evidence.go): the window's porcupine operations, each with its
// client (renumbered from 0), its call and return as nanoseconds since the
// checker started, and its description (describeOp). The key, the state
// carried into the window and the unknown writes pending from earlier
// windows are not in it.

type evidenceOp struct {
	client    int
	call, ret int64 // ret is infinity for an op that may take effect until the end
	kind      string
	maybe     bool // optional in the window: unknown, or in flight at a cut
	value     string
	expect    string
	found     bool // get
	swapped   bool // cas
}

// readEvidence decodes the operations of an evidence HTML file (or of its
// embedded JSON alone).
func readEvidence(path string) ([]evidenceOp, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	const marker = "const data = "
	if i := strings.Index(string(raw), marker); i >= 0 {
		raw = raw[i+len(marker):]
	}
	var data struct {
		Partitions []struct {
			History []struct {
				ClientId      int
				OriginalStart string
				OriginalEnd   string
				Description   string
			}
		}
	}
	// The data is one JSON value; the decoder stops after it.
	if err := json.NewDecoder(strings.NewReader(string(raw))).Decode(&data); err != nil {
		return nil, fmt.Errorf("%s: no porcupine visualization data: %w", path, err)
	}
	var ops []evidenceOp
	for _, p := range data.Partitions {
		for _, h := range p.History {
			op, err := parseDescription(h.Description)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			op.client = h.ClientId
			if op.call, err = strconv.ParseInt(h.OriginalStart, 10, 64); err != nil {
				return nil, fmt.Errorf("%s: call %q: %w", path, h.OriginalStart, err)
			}
			if op.ret, err = strconv.ParseInt(h.OriginalEnd, 10, 64); err != nil {
				return nil, fmt.Errorf("%s: return %q: %w", path, h.OriginalEnd, err)
			}
			ops = append(ops, op)
		}
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("%s: no operations", path)
	}
	return ops, nil
}

// readCarried decodes the state an evidence file says its window was
// checked from (see writeEvidence); nil for a file without it.
func readCarried(path string) (*Carried, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := strings.LastIndex(string(raw), carriedMarker)
	if i < 0 {
		return nil, nil
	}
	var c Carried
	if err := json.NewDecoder(strings.NewReader(string(raw[i+len(carriedMarker):]))).Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: carried state: %w", path, err)
	}
	return &c, nil
}

// parseDescription inverts describeOp for the ops of a key-window.
func parseDescription(d string) (evidenceOp, error) {
	var op evidenceOp
	s := d
	if rest, ok := strings.CutPrefix(s, "maybe "); ok {
		op.maybe, s = true, rest
	}
	bad := fmt.Errorf("operation %q: not a put, get or cas description", d)
	quoted := func() (string, bool) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", false
		}
		s = s[len(q):]
		v, err := strconv.Unquote(q)
		return v, err == nil
	}
	switch {
	case strings.HasPrefix(s, "get() -> ") && !op.maybe:
		op.kind, s = "get", strings.TrimPrefix(s, "get() -> ")
		if s == "<absent>" {
			return op, nil
		}
		v, ok := quoted()
		if !ok || s != "" {
			return op, bad
		}
		op.value, op.found = v, true
	case strings.HasPrefix(s, "put("):
		op.kind, s = "put", strings.TrimPrefix(s, "put(")
		v, ok := quoted()
		if !ok || s != ")" {
			return op, bad
		}
		op.value = v
	case strings.HasPrefix(s, "cas("):
		op.kind, s = "cas", strings.TrimPrefix(s, "cas(")
		e, ok := quoted()
		if !ok || !strings.HasPrefix(s, " -> ") {
			return op, bad
		}
		s = strings.TrimPrefix(s, " -> ")
		v, ok := quoted()
		if !ok {
			return op, bad
		}
		op.expect, op.value = e, v
		switch {
		case op.maybe && s == ")":
		case !op.maybe && s == ") -> true":
			op.swapped = true
		case !op.maybe && s == ") -> false":
		default:
			return op, bad
		}
	default:
		return op, bad
	}
	return op, nil
}

// kvOp is the op as a history line can state it: an optional op becomes an
// unknown one (for a write in flight at a forced cut that loses its
// return, which only widens what is legal), one that may take effect until
// the end never returned (ret=?).
func (e evidenceOp) kvOp(epoch time.Time, key string) KVOp {
	op := KVOp{ClientID: e.client, Op: e.kind, Key: key, Call: epoch.Add(time.Duration(e.call)), Outcome: components.OutcomeOK}
	op.Return = epoch.Add(time.Duration(e.ret))
	if e.ret == math.MaxInt64 {
		op.Return = op.Call
	}
	switch e.kind {
	case "get":
		if e.found {
			op.Output, op.Found = []byte(e.value), true
		}
	case "put":
		op.Value = []byte(e.value)
	case "cas":
		op.Expect, op.Value, op.Swapped = []byte(e.expect), []byte(e.value), e.swapped
	}
	if e.maybe {
		op.Outcome, op.Swapped = components.OutcomeUnknown, false
	}
	return op
}

// matches reports whether the recorded op is the one the evidence shows.
func (e evidenceOp) matches(epoch time.Time, op KVOp) bool {
	if op.Op != e.kind || op.Call.Sub(epoch) != time.Duration(e.call) {
		return false
	}
	switch e.kind {
	case "get":
		return op.Found == e.found && string(op.Output) == e.value
	case "put":
		return string(op.Value) == e.value
	default:
		return string(op.Value) == e.value && string(op.Expect) == e.expect &&
			(e.maybe || op.Swapped == e.swapped)
	}
}

// evidenceName matches an evidence file's name (see writeEvidence), whose
// last part is the hash of the key.
var evidenceName = regexp.MustCompile(`^linearizability-.*-([0-9a-f]{16})\.(html|json)$`)

// checkEvidenceKey checks key against the hash in the file's name, if the
// file kept its name.
func checkEvidenceKey(path, key string) error {
	m := evidenceName.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return nil
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	if got := fmt.Sprintf("%016x", h.Sum64()); got != m[1] {
		return fmt.Errorf("key %q does not match the evidence file name (key hash %s, %q hashes to %s): give key= from the invariant_violation event", key, m[1], key, got)
	}
	return nil
}
