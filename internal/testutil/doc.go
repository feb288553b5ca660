// Package testutil holds helpers shared by tests: the Debian Alertmanager
// and Prometheus on loopback, a goroutine-safe buffer for a child's
// output, and the key partition of whole-history porcupine oracles. Only
// _test files import it.
package testutil
