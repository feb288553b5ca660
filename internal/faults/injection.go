package faults

import (
	"context"
	"time"
)

// Injection is the planned fault an Inject call is for, as the runner
// hands it to the injector on the context: a backend that creates objects
// outside soakd (Chaos Mesh) names them after the fault and gives them its
// remaining time, so they end on their own if soakd dies.
type Injection struct {
	ID        string        // the planned fault's id (random-12, timeline-0)
	At        time.Duration // its planned offset into the run
	Remaining time.Duration // how long it has left when Inject is called
}

type injectionKey struct{}

func withInjection(ctx context.Context, in Injection) context.Context {
	return context.WithValue(ctx, injectionKey{}, in)
}

// InjectionOf returns the planned fault ctx's Inject call is for; false
// outside an injection the runner started (a test calling Inject directly).
func InjectionOf(ctx context.Context) (Injection, bool) {
	in, ok := ctx.Value(injectionKey{}).(Injection)
	return in, ok
}
