package message

import (
	"context"
	"testing"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/faults"
)

type fakeComp struct {
	components.Component
	set map[string]components.MessageFault
}

func (f *fakeComp) Name() string { return "pbft" }
func (f *fakeComp) SetMessageFaults(node string, m components.MessageFault) error {
	if m == (components.MessageFault{}) {
		delete(f.set, node)
	} else {
		f.set[node] = m
	}
	return nil
}

func kind(t *testing.T, name string) faults.Spec {
	t.Helper()
	for _, s := range Specs() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no kind %s", name)
	return faults.Spec{}
}

func TestInjectSetsAndRevertLifts(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		params map[string]string
		want   components.MessageFault
	}{
		{"drop", nil, components.MessageFault{Drop: DefaultDrop}},
		{"duplicate", map[string]string{"probability": "30%"}, components.MessageFault{Duplicate: 0.3}},
		{"reorder", map[string]string{"window": "4"}, components.MessageFault{Reorder: 4}},
	} {
		f := &fakeComp{set: map[string]components.MessageFault{}}
		in, err := kind(t, tc.kind).New(faults.Env{Components: []components.Component{f}})
		if err != nil {
			t.Fatal(err)
		}
		revert, err := in.Inject(context.Background(), "pbft/node-1,node-3", tc.params)
		if err != nil {
			t.Fatal(err)
		}
		got := f.set["node-3"]
		got.Seed = 0
		if len(f.set) != 2 || got != tc.want || f.set["node-1"].Seed == 0 {
			t.Fatalf("%s: set %+v, want %+v on both", tc.kind, f.set, tc.want)
		}
		if err := revert(context.Background()); err != nil || len(f.set) != 0 {
			t.Fatalf("%s: revert %v left %+v", tc.kind, err, f.set)
		}
		if _, err := in.Inject(context.Background(), "raft/node-1", nil); err == nil {
			t.Fatalf("%s: a component without message faults accepted", tc.kind)
		}
	}
}

func TestBadParams(t *testing.T) {
	for kindName, p := range map[string]map[string]string{
		"drop": {"probability": "0%"}, "duplicate": {"probability": "150%"}, "reorder": {"window": "1"},
	} {
		if err := kind(t, kindName).Validate(p); err == nil {
			t.Errorf("%s %v accepted", kindName, p)
		}
	}
}
