package profiling

import (
	"context"
	"runtime/pprof"
)

// ComponentLabel is the pprof label key Do sets.
const ComponentLabel = "component"

// Do runs f with the pprof label component=<component> on ctx and on the
// calling goroutine; goroutines started inside f inherit it. The label shows
// up in the CPU profile pushed to Pyroscope and in every goroutine profile
// (pushed and local), so a goroutine leak is attributed to its component.
func Do(ctx context.Context, component string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(ComponentLabel, component), f)
}

// SupportsGoroutineLeakProfile reports whether this binary's runtime has the
// "goroutineleak" profile (Go 1.26 built with
// GOEXPERIMENT=goroutineleakprofile).
func SupportsGoroutineLeakProfile() bool {
	return pprof.Lookup("goroutineleak") != nil
}
