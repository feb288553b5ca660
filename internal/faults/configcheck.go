package faults

import (
	"fmt"
	"strings"

	"github.com/soakd/soakd/internal/config"
)

var _ config.Checker = (*Registry)(nil)

// CheckConfig validates the config's fault kinds and their parameters
// against the registered kinds (see config.Checker): an unknown or unbuilt
// kind, a duplicate in faults.random.kinds, a kind that is not drawn at
// random, and each timeline parameter problem at its own field.
func (r *Registry) CheckConfig(c *config.Config, report func(path, msg string)) {
	unknown := func(k string) string {
		return fmt.Sprintf("unknown fault kind %q (this soakd has %s)", k, strings.Join(r.Names(), ", "))
	}
	if rf := c.Faults.Random; rf != nil {
		seen := map[string]bool{}
		for i, k := range rf.Kinds {
			path := fmt.Sprintf("faults.random.kinds[%d]", i)
			s, ok := r.Spec(k)
			switch {
			case k == "":
				// the schema reports it
			case !ok:
				report(path, unknown(k))
			case seen[k]:
				report(path, fmt.Sprintf("duplicate kind %q", k))
			case s.Draw == nil:
				report(path, s.NotRandom)
			}
			seen[k] = true
		}
	}
	for i, t := range c.Faults.Timeline {
		path := fmt.Sprintf("faults.timeline[%d]", i)
		if t.Kind == "" {
			continue // the schema reports it
		}
		s, ok := r.Spec(t.Kind)
		if !ok {
			report(path+".kind", unknown(t.Kind))
			continue
		}
		err := s.Validate(t.Params)
		if err == nil && s.Bounds != nil {
			err = s.Bounds(c, t.Params)
		}
		for _, p := range ParamProblems(err) {
			if p.Param == "" {
				report(path+".params", p.Msg)
			} else {
				report(path+".params."+p.Param, p.Msg)
			}
		}
	}
}
