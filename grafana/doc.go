// Package grafana holds soakd's monitoring as code: the Grafana dashboards
// (built here with grafana-foundation-sdk, written by `make dashboards`,
// i.e. `go run ./grafana/gen`, and committed as dashboards/*.json), Grafana
// provisioning files, the Prometheus alert and recording rules with their
// promtool tests (prometheus/), the runbook the alerts link to
// (RUNBOOK.md), and a loopback Prometheus + Alertmanager stack (stack.sh).
//
// The package's Go code is the dashboard generator plus helpers that list
// every PromQL expression of the dashboards and rules, so tests here and the
// end-to-end test in cmd/soakd can lint, parse and run them. It imports only
// the foundation SDK, the Prometheus PromQL parser and YAML; nothing in
// soakd imports it.
package grafana

//go:generate go run ./gen -out dashboards
