// Command gen writes soakd's Grafana dashboards (built in package grafana)
// as JSON: `make dashboards`, i.e. `go run ./grafana/gen`, from the module
// root. A test in package grafana fails when the committed JSON is stale.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/soakd/soakd/grafana"
)

func main() {
	out := flag.String("out", "grafana/dashboards", "directory to write the dashboards' JSON into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := grafana.Render()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	return nil
}
