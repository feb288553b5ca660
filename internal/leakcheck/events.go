package leakcheck

// Journal event types of the leak alerts, for writers and readers.
const (
	EventLeakAlertFired    = "leak_alert_fired"
	EventLeakAlertResolved = "leak_alert_resolved"
	EventLeakAlertRestored = "leak_alert_restored"
	// EventFaultResidue is one fault's residue, measured a settle time
	// after its revert (or given up as unmeasured): the report's fault
	// table reads it.
	EventFaultResidue = "fault_residue"
)
