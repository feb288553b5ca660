package faults

// Journal event types the runner writes and Settled and ReplayPlan read
// back: one name for writer and reader.
const (
	EventFaultInjected = "fault_injected"
	EventFaultReverted = "fault_reverted"
	EventFaultSkipped  = "fault_skipped"
	EventFaultFailed   = "fault_failed"
	// EventFaultsPaused and EventFaultsResumed bracket a pause while a
	// component is unhealthy (faults.pause_when_unhealthy).
	EventFaultsPaused  = "faults_paused"
	EventFaultsResumed = "faults_resumed"
)
