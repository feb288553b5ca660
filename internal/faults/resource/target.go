package resource

import (
	"fmt"
	"strings"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
)

// nodeResources are the components whose nodes the disk and connections
// kinds can aim at, by name.
func nodeResources(cs []components.Component) map[string]components.NodeResources {
	out := map[string]components.NodeResources{}
	for _, c := range cs {
		if r, ok := c.(components.NodeResources); ok {
			out[c.Name()] = r
		}
	}
	return out
}

// resolveNodes splits a resolved target "component/node[,node]".
func resolveNodes(nodes map[string]components.NodeResources, target string) (components.NodeResources, string, []string, error) {
	comp, list, ok := strings.Cut(target, "/")
	res, known := nodes[comp]
	if !ok || !known || list == "" {
		return nil, "", nil, fmt.Errorf("target %q: want self or <component>/<node>[,<node>] of a component with node resources", target)
	}
	return res, comp, strings.Split(list, ","), nil
}

// bounds are the run's resource bounds (the defaults without a config).
func bounds(env faults.Env) config.ResourceBounds {
	if env.Config == nil {
		return config.Default().Faults.Resource
	}
	return env.Config.Faults.Resource
}
