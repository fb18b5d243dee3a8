package webhook

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/hooksmith/webhook/store"
)

// worker runs the deliveries the dispatcher hands out until Close closes the work
// channel, and tells the dispatcher as each is done with. Its attempts' contexts derive
// from one of its own (attemptTimer), itself derived from the Sender's: a context
// registers with its parent under the parent's lock, and workers sharing one parent
// contended for that lock on every attempt.
func (s *Sender) worker() {
	defer s.workers.Done()
	ctx, cancel := context.WithCancel(s.baseCtx)
	defer cancel()
	t := &attemptTimer{parent: ctx}
	for d := range s.work {
		s.run(t, d)
		s.disp.finished(d.EndpointID)
	}
}

// run makes one attempt of d and passes its result on. A delivery that may not be
// attempted now (Close has begun, its lease could lapse mid-attempt, its endpoint was
// disabled, paused or its circuit opened since the claim) is handed back untouched; one
// whose endpoint was removed fails, with the reason.
func (s *Sender) run(t *attemptTimer, d Delivery) {
	e, ok := s.reg.get(d.EndpointID)
	now := s.clock.Now()
	select {
	case <-s.stop:
		// Claimed ahead but not started when Close began: the next Sender takes it.
		s.handBack(d)
		return
	default:
	}
	switch {
	case !d.LeaseExpiresAt.IsZero() && now.Add(s.cfg.timeout).After(d.LeaseExpiresAt):
		// It waited in the buffer so long (behind attempts that ran to their timeout)
		// that an attempt could outlive the lease, and another Sender take it
		// mid-attempt: hand it back instead, to be claimed afresh.
		s.log.Debug("webhook: handing back a claimed delivery whose lease would lapse mid-attempt",
			zap.String("delivery_id", d.ID), zap.Time("lease_expires_at", d.LeaseExpiresAt))
		s.handBack(d)
		return
	case !ok:
		s.rec.record(recordJob{d: d, verdict: Permanent, p: store.RecordParams{DeliveryID: d.ID, Owner: s.id,
			Now: now, State: StateFailed, Reason: fmt.Sprintf("endpoint %q was removed; no request was sent", d.EndpointID)}})
		return
	case e.ep.Disabled:
		s.handBack(d)
		return
	}
	tk, admitted := s.health.admit(d.EndpointID, now)
	if !admitted {
		// Paused (Retry-After) or its circuit open since the claim: the delivery waits
		// in the store, its attempts unspent, and keeps its place.
		s.handBack(d)
		return
	}
	r := s.att.do(t, e, d, now)
	end := s.clock.Now()
	aborted := s.baseCtx.Err() != nil && r.attempt.StatusCode == 0
	o := decide(d, e.ep.Ordered, r, s.retry, end, aborted)
	// Health first, so that whoever the attempt hook tells already sees it.
	ch := s.health.record(e.ep.ID, tk, end, o.health, o.pauseUntil)
	o.record.DeliveryID, o.record.Owner = d.ID, s.id
	s.rec.record(recordJob{d: d, p: o.record, verdict: o.verdict})
	if ch.transition != noTransition {
		s.circuitChanged(e.ep.ID, ch.health)
	}
	switch {
	case o.health == healthGone:
		s.disableEndpoint(e, "the endpoint answered 410 Gone")
	case ch.disable != "":
		s.disableEndpoint(e, ch.disable)
	}
}

// handBack returns a claimed delivery to the store as it was, no attempt made: pending,
// due when it was due.
func (s *Sender) handBack(d Delivery) {
	s.rec.record(recordJob{d: d, p: store.RecordParams{DeliveryID: d.ID, Owner: s.id, Now: s.clock.Now(),
		State: StatePending, NextAttemptAt: d.NextAttemptAt}})
}

// circuitChanged logs an endpoint's circuit opening or closing and tells the hook.
func (s *Sender) circuitChanged(id string, h EndpointHealth) {
	s.log.Info("webhook: endpoint circuit "+h.Circuit.String(), zap.String("endpoint_id", id),
		zap.Int("consecutive_failures", h.ConsecutiveFailures), zap.Time("open_until", h.OpenUntil))
	if s.cfg.hooks.OnCircuitChange != nil {
		s.cfg.hooks.OnCircuitChange(id, h)
	}
}

// disableEndpoint disables an endpoint on the Sender's own initiative and says so, unless
// it changed since e, the entry the attempt that led here was made with, was current:
// it was enabled again meanwhile, or pointed at a new target.
func (s *Sender) disableEndpoint(e *endpointEntry, reason string) {
	if changed, _ := s.reg.setDisabled(e.ep.ID, true, e.epoch); changed {
		s.log.Warn("webhook: endpoint disabled", zap.String("endpoint_id", e.ep.ID), zap.String("reason", reason))
		if s.cfg.hooks.OnEndpointDisabled != nil {
			s.cfg.hooks.OnEndpointDisabled(e.ep.ID, reason)
		}
	}
}
