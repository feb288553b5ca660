package components

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type nopComponent struct{ name string }

func (n nopComponent) Name() string                { return n.name }
func (nopComponent) Start(context.Context) error   { return nil }
func (nopComponent) Stop(context.Context) error    { return nil }
func (nopComponent) Health() Health                { return Health{Healthy: true} }
func (nopComponent) Ops() []string                 { return []string{"put"} }
func (nopComponent) Do(context.Context, Op) Result { return Result{Outcome: OutcomeOK} }

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if err := r.Register("raft", func(d Deps) (Component, error) { return nopComponent{"raft"}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("pbft", func(Deps) (Component, error) { return nil, errors.New("no replicas") }); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("raft", func(Deps) (Component, error) { return nil, nil }); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	if err := r.Register("", nil); err == nil {
		t.Fatal("empty registration accepted")
	}
	if got := strings.Join(r.Names(), ","); got != "pbft,raft" {
		t.Fatalf("Names = %s", got)
	}
	c, err := r.Build("raft", Deps{})
	if err != nil || c.Name() != "raft" {
		t.Fatalf("Build raft = %v, %v", c, err)
	}
	if _, err := r.Build("pbft", Deps{}); err == nil || !strings.Contains(err.Error(), "build pbft: no replicas") {
		t.Fatalf("Build pbft = %v", err)
	}
	if _, err := r.Build("migration", Deps{}); err == nil || !strings.Contains(err.Error(), `unknown component "migration"`) {
		t.Fatalf("Build migration = %v", err)
	}
}
