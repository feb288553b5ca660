package leakcheck

// Journal event types of the leak alerts, for writers and readers.
const (
	EventLeakAlertFired    = "leak_alert_fired"
	EventLeakAlertResolved = "leak_alert_resolved"
	EventLeakAlertRestored = "leak_alert_restored"
)
