// Package alert owns soakd's alert sinks — Alertmanager (API v2), a JSON
// webhook and the log — and the Dispatcher that delivers alert state changes
// to them with retries and bounded queues.
//
// It imports nothing of soakd's internals: leakcheck (and anything else that
// raises alerts) calls Dispatcher.Notify with an Alert; run wires the sinks
// from the alerting config; telemetry may read Dispatcher.Active and hook
// OnSent/OnSendError into counters.
//
// # Delivery
//
// Every sink has its own goroutine and its own queue of at most
// DispatcherOptions.QueueSize state changes (plus one in-flight batch of at
// most MaxBatch alerts). Notify never blocks: when a queue is full the oldest
// queued change is dropped and counted (Dispatcher.Dropped). A failed Send is
// retried with capped, jittered exponential backoff on the injected clock; a
// sink that reports a non-retryable error (HTTP 4xx other than 408 and 429)
// drops that batch, counted as dropped too. Each Send runs under a context
// that Stop cancels, bounded by SendTimeout.
//
// Sinks that implement Resender and return true (the Alertmanager sink) also
// get every firing alert again each ResendInterval: Alertmanager resolves an
// alert on its own when it is not re-sent within resolve_timeout. A resolved
// alert is sent once more, with EndsAt set, and then forgotten, so the set of
// active alerts is bounded by the number of distinct alerts (and by
// MaxActive). The webhook and log sinks get state changes only.
// Dispatcher.Restore takes over an alert an earlier incarnation left firing:
// it joins the re-sends and goes to the Resender sinks at once, while the
// sinks that get state changes only hear of it again when it resolves.
//
// Memory is bounded per sink by QueueSize queued changes plus one batch in
// flight, and overall by MaxActive remembered firing alerts. Warnings and
// errors are logged at most once a minute per sink (on the injected clock),
// each line saying how many were suppressed since the last one.
//
// # Webhook payload
//
// The webhook sink POSTs one JSON document per batch, Content-Type
// application/json, in the shape of Alertmanager's webhook (version "1"):
//
//	{
//	  "version": "1",
//	  "status": "firing",          // "firing" if any alert in the batch fires, else "resolved"
//	  "alerts": [
//	    {
//	      "status": "firing",      // or "resolved"
//	      "labels": {"alertname": "SoakdHeapLeak", "severity": "warning", "run_id": "...", "signal": "heap_live_bytes"},
//	      "annotations": {"summary": "...", "description": "...", "evidence": "..."},
//	      "startsAt": "2025-01-02T03:04:05Z",  // RFC 3339, UTC
//	      "endsAt": "2025-01-02T04:00:00Z",    // RFC 3339, UTC; absent while firing
//	      "generatorURL": "http://...",        // absent when empty
//	      "fingerprint": "0123456789abcdef"    // 16 hex digits, stable per Alert.Key
//	    }
//	  ]
//	}
//
// Any 2xx response is success.
package alert
