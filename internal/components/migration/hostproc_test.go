package migration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A host process's API refuses bad input with a one-line error, installs
// guests only while the host is down, and answers an owner question only
// for a migration that asked one.
func TestHostProcessAPI(t *testing.T) {
	p := NewHostProcess(HostProcessOptions{ID: "host-1", Addr: "127.0.0.1:0"})
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	defer func() { _ = p.Close() }()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	spec := `{"id": "guest-0", "size": 65536, "seed": 1, "content": {"Zero": 0.5, "Text": 0.5}, "workload": {"Rate": 0, "HotSet": 0.1, "Pattern": "sequential"}}`
	for _, tc := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/migration/v1/guests", `{"id": "guest-0", "sise": 1}`, 400, "unknown field"},
		{"/migration/v1/guests", `{"id": "guest-0", "size": 65536, "image": "/no/such/image"}`, 400, "guest image"},
		{"/migration/v1/guests", spec, 204, ""},
		{"/migration/v1/start", `{"stall_timeout": "soon"}`, 400, "bad request body"},
		{"/migration/v1/start", `{"stall_timeout": 30000000000}`, 204, ""},
		{"/migration/v1/guests", spec, 409, "host that is down"},
		{"/migration/v1/migrations/7/owner", `{}`, 404, "asked no ownership question"},
		{"/migration/v1/migrations/x/owner", `{}`, 400, "bad owner answer"},
		{"/migration/v1/migrate", `{"id": 1, "guest": "guest-9", "params": {}, "DestID": "host-2", "DestAddr": "127.0.0.1:1"}`, 200, "is not on host-1"},
	} {
		code, msg := post(tc.path, tc.body)
		if code != tc.code || !strings.Contains(msg, tc.want) || (code >= 400 && strings.Contains(msg, "\n")) {
			t.Errorf("POST %s %s: %d %q, want %d with %q on one line", tc.path, tc.body, code, msg, tc.code, tc.want)
		}
	}
	if st := p.Status(); !st.Up || len(st.Guests) != 1 || st.Addr == "" {
		t.Errorf("status %+v, want up with guest-0", st)
	}
}
