package registry

import (
	"slices"
	"testing"
)

func TestOrdered(t *testing.T) {
	var o Ordered[int]
	for i, name := range []string{"b", "a", "c"} {
		if err := o.Add(name, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Add("a", 9); err == nil {
		t.Fatal("duplicate accepted")
	}
	if err := o.Add("", 9); err == nil {
		t.Fatal("empty name accepted")
	}
	if got := o.All(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("All = %v, want registration order", got)
	}
	if got := o.Names(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Names = %v, want sorted", got)
	}
	if v, ok := o.Get("c"); !ok || v != 2 {
		t.Fatalf("Get(c) = %v, %v", v, ok)
	}
	if _, ok := o.Get("z"); ok {
		t.Fatal("Get(z) found")
	}
}
