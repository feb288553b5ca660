// Package testutil holds helpers shared by tests that drive real processes:
// the Debian Alertmanager and Prometheus on loopback, and a
// goroutine-safe buffer for a child's output. Only _test files import it.
package testutil
