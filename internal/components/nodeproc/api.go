package nodeproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/soakd/soakd/internal/components"
)

// maxBody bounds a request or answer body of a node's API.
const maxBody = 1 << 20

// Call is one request to a node process's JSON API at addr: in as the
// body (nil: none), out decoded from a 2xx answer (nil: not read). Any
// other status is an error quoting the start of the answer.
func Call(ctx context.Context, client *http.Client, addr, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out)
}

// DecodeBody decodes a node API request's JSON body into v: unknown
// fields are an error, and the body is bounded.
func DecodeBody(r *http.Request, v any) error {
	d := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}

// Member is one node of a component: its id and protocol address.
type Member struct{ ID, Addr string }

// PeerArgs is node self's --peer flags (every member's address, its own
// included) and, with linkAddr, a --via flag per other member: the
// fabric's proxy for the link, which it dials instead.
func PeerArgs(self string, members []Member, linkAddr func(from, to, addr string) (string, error)) ([]string, error) {
	var args []string
	for _, m := range members {
		args = append(args, "--peer", m.ID+"="+m.Addr)
		if m.ID == self || linkAddr == nil {
			continue
		}
		via, err := linkAddr(self, m.ID, m.Addr)
		if err != nil {
			return nil, fmt.Errorf("link %s->%s: %w", self, m.ID, err)
		}
		args = append(args, "--via", m.Addr+"="+via)
	}
	return args, nil
}

// Target is a node process as the leak checker samples it: its pid (0
// while down or remote) and its pprof and metrics endpoints at httpAddr.
func Target(node string, local bool, proc *Proc, httpAddr string) components.ProcessTarget {
	t := components.ProcessTarget{Node: node, Local: local}
	if proc != nil {
		t.PID = proc.PID()
	}
	if httpAddr != "" {
		t.PprofURL, t.MetricsURL = "http://"+httpAddr+"/debug/pprof/", "http://"+httpAddr+"/metrics"
	}
	return t
}
