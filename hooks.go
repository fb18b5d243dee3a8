package webhook

// Hooks are callbacks the Sender makes as deliveries progress. They run synchronously on
// the worker that made the attempt, so they must be quick and must not block; they may
// be called concurrently. Nil fields are skipped.
type Hooks struct {
	// OnAttempt is called after every attempt has been recorded, and for a delivery that
	// ends without an attempt (its endpoint was removed), with a zero Attempt.
	OnAttempt func(AttemptReport)
	// OnEndpointDisabled is called when the Sender disables an endpoint by itself (a
	// 410 Gone answer, or failing continuously for WithAutoDisable's time), with the
	// reason.
	OnEndpointDisabled func(endpointID, reason string)
	// OnCircuitChange is called when an endpoint's circuit breaker opens (after the
	// threshold's failures, or again after a failed probe, with the new OpenUntil) or
	// closes (a successful probe, or a reset: EnableEndpoint, a new URL, a manual retry,
	// ResetEndpointHealth).
	OnCircuitChange func(endpointID string, h EndpointHealth)
}

// AttemptReport describes one finished attempt.
type AttemptReport struct {
	// Delivery is the delivery's state after the attempt (Body shared, do not modify).
	Delivery Delivery
	Attempt  Attempt
	Verdict  Verdict
	// Final reports whether the delivery is finished (succeeded or failed).
	Final bool
}
