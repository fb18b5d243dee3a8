package webhook

import (
	"errors"
	"time"

	"github.com/hooksmith/webhook/store"
)

// outcome is what an attempt's result means: what to record for the delivery and what
// it says of the endpoint's health.
type outcome struct {
	record  store.RecordParams // State, NextAttemptAt, Attempt and Now; the caller adds the IDs
	verdict Verdict
	health  healthEvent
	// pauseUntil, when set, holds the endpoint's attempts until then: the receiver's
	// Retry-After, or for an ordered endpoint the retry its later deliveries wait for.
	pauseUntil time.Time
}

// isSignError reports whether err is a signing failure: the request was never sent, and
// no Classifier is asked what that means.
func isSignError(err error) bool {
	var se *signError
	return err != nil && errors.As(err, &se)
}

// decide is the outcome of attempt r of delivery d, ended at end, under policy; aborted
// says Close cut it short. ordered says d's endpoint delivers strictly in order. It is a
// pure function.
func decide(d Delivery, ordered bool, r attemptResult, policy RetryPolicy, end time.Time, aborted bool) outcome {
	a := r.attempt
	o := outcome{record: store.RecordParams{Attempt: &a, Now: end}}
	o.verdict = Permanent
	if !isSignError(r.err) {
		o.verdict = policy.Classify(a.StatusCode, r.err)
	}
	o.health = classifyHealth(a.StatusCode, r.err, o.verdict)
	p := &o.record
	switch {
	case aborted:
		// Try again as soon as a Sender runs.
		p.State, p.NextAttemptAt, o.verdict, o.health = StatePending, end, Retry, healthNone
		return o
	case o.verdict == Delivered:
		p.State = StateSucceeded
	case o.verdict == Retry:
		at, ok := policy.next(end, d.QueuedAt, d.Attempts+1, r.retryAfter)
		switch {
		case !ok:
			p.State = StateFailed
		case r.retryAfter > 0:
			// The receiver paused the endpoint (pauseUntil) rather than failed this
			// delivery: it keeps its place in the endpoint's line and goes first when
			// the pause ends, not behind every delivery due meanwhile.
			p.State, p.NextAttemptAt = StatePending, d.NextAttemptAt
		default:
			p.State, p.NextAttemptAt = StatePending, at
		}
	default:
		p.State = StateFailed
	}
	if r.retryAfter > 0 {
		o.pauseUntil = end.Add(min(r.retryAfter, policy.MaxRetryAfter))
	}
	if ordered && p.State == StatePending && p.NextAttemptAt.After(o.pauseUntil) {
		// The endpoint's later deliveries wait for this one: nothing to claim there
		// before its retry.
		o.pauseUntil = p.NextAttemptAt
	}
	return o
}
