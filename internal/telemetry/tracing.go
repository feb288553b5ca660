package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingOptions configures NewTracerProvider.
type TracingOptions struct {
	// Endpoint is an OTLP/HTTP endpoint: host:port (plain HTTP) or an
	// http(s) URL. Empty disables tracing.
	Endpoint string
	// Ratio is the fraction of root spans sampled.
	Ratio   float64
	Version string
	RunID   string
}

// Tracing is a tracer provider and the function that flushes and stops it.
type Tracing struct {
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Shutdown flushes queued spans and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// NewTracerProvider returns an OTLP-exporting provider, or a no-op one when
// no endpoint is set. Spans are batched; export failures are the exporter's
// to retry and never block the caller.
func NewTracerProvider(ctx context.Context, o TracingOptions) (*Tracing, error) {
	if o.Endpoint == "" {
		return &Tracing{Provider: noop.NewTracerProvider()}, nil
	}
	var opts []otlptracehttp.Option
	if strings.Contains(o.Endpoint, "://") {
		u, err := url.Parse(o.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("telemetry.otlp_endpoint: %w", err)
		}
		// A bare collector URL means its standard OTLP/HTTP traces path.
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	} else {
		opts = append(opts, otlptracehttp.WithEndpoint(o.Endpoint), otlptracehttp.WithInsecure())
	}
	opts = append(opts, otlptracehttp.WithTimeout(10*time.Second))
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res := resource.NewSchemaless(
		semconv.ServiceName("soakd"),
		semconv.ServiceVersion(o.Version),
		attribute.String("soakd.run_id", o.RunID),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp), // bounded queue: drops rather than grows
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.Ratio))),
	)
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}
