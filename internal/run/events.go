package run

// Journal event types of the run's lifecycle, for writers and readers.
const (
	EventRunStarted   = "run_started"
	EventRunResumed   = "run_resumed"
	EventRunStopped   = "run_stopped"
	EventRunCompleted = "run_completed"
	EventRunFailed    = "run_failed"
	EventStopFailed   = "stop_failed"
	EventJournalFull  = "journal_full"
)
