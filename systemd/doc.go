// Package systemd holds soakd's systemd unit, soakd.service (Type=notify, watchdog,
// DynamicUser, state under /var/lib/soakd, strong sandboxing), and the tests that keep
// it honest: `systemd-analyze verify` against a freshly built soakd binary,
// `systemd-analyze security` with an exposure threshold, and the contract the daemon
// relies on (notify type, watchdog, state directory, command line).
//
// The package has no runtime code and imports nothing from soakd; the default
// /etc/soakd/soakd.yaml belongs to the config owners.
package systemd
