package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestTracesReachOTLPReceiver exports a span to a real OTLP/HTTP receiver on
// loopback and checks the resource and span arrive intact.
func TestTracesReachOTLPReceiver(t *testing.T) {
	var mu sync.Mutex
	var got []*collectortrace.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		got = append(got, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	defer srv.Close()

	ctx := context.Background()
	tr, err := NewTracerProvider(ctx, TracingOptions{Endpoint: srv.URL, Ratio: 1, Version: "v9", RunID: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("test").Start(ctx, "raft.put")
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("receiver got no export")
	}
	rs := got[0].ResourceSpans[0]
	attrs := map[string]string{}
	for _, kv := range rs.Resource.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["service.name"] != "soakd" || attrs["service.version"] != "v9" || attrs["soakd.run_id"] != "run-1" {
		t.Fatalf("resource attributes = %v", attrs)
	}
	if name := rs.ScopeSpans[0].Spans[0].Name; name != "raft.put" {
		t.Fatalf("span name %q", name)
	}
}

func TestTracingDisabledIsNoop(t *testing.T) {
	tr, err := NewTracerProvider(context.Background(), TracingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("x").Start(context.Background(), "op")
	if span.SpanContext().IsValid() {
		t.Fatal("no-op provider produced a recording span")
	}
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
