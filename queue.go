package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Dispatcher timing.
const (
	// storeErrorBackoff is how long the dispatcher waits after a store error before
	// claiming again.
	storeErrorBackoff = time.Second
	// claimBatchWait is the longest the dispatcher puts off a claim to make it larger
	// while the workers have work buffered.
	claimBatchWait = time.Millisecond
	// recordTimeout bounds writing an attempt's result, independently of Close's
	// context, so an aborted attempt is still recorded.
	recordTimeout = 10 * time.Second
	// DefaultPruneInterval is how often the Sender deletes finished deliveries past their
	// retention (WithRetention).
	DefaultPruneInterval = 10 * time.Minute
)

// dispatch is the Sender's one dispatcher goroutine. It claims due deliveries for free
// workers, skipping endpoints that cannot take work now, and otherwise waits, without
// polling, for the first of: a Send or endpoint change, a worker finishing, the next due
// time, a store notification, or the slow poll for work enqueued elsewhere.
func (s *Sender) dispatch() {
	defer s.loopsDone.Done()
	var notify <-chan struct{}
	if n, ok := s.store.(Notifier); ok {
		notify = n.Notify()
	}
	// inflight counts claimed deliveries not yet finished: attempts running and those
	// waiting in the work buffer. perEndpoint counts the same per endpoint.
	inflight := 0
	perEndpoint := make(map[string]int)
	var done []string
	collect := func() {
		s.finMu.Lock()
		done, s.finished = s.finished, done[:0]
		s.finMu.Unlock()
		for _, id := range done {
			inflight--
			if perEndpoint[id]--; perEndpoint[id] <= 0 {
				delete(perEndpoint, id)
			}
		}
	}
	idleClaims := 0 // consecutive claims that found nothing though work seemed due
	// claimed is the claims' slice, reused: the deliveries go to the workers by value.
	var claimed []Delivery
	// The wait's timer is kept while later waits want it no earlier (most often the slow
	// poll, which moves a little later on every round): a timer per round was a fifth
	// of the dispatcher's own cost. Firing early only means a round that finds nothing.
	var timer Timer
	var timerAt time.Time
	// Batching claims goes by real time, whatever the Sender's clock: a fake clock that
	// tests do not advance must not hold claims back.
	var lastClaim time.Time
	batchTimer := time.NewTimer(time.Hour)
	batchTimer.Stop()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		collect()
		now := s.clock.Now()
		free := s.cfg.workers + s.prefetch - inflight
		// Claim in batches: while the buffer holds enough to keep the workers busy, wait
		// until it runs lower (the worker that takes it below half, or that finishes an
		// attempt with it low, says so) and make one larger claim, rather than one or two
		// claims per finished attempt; claims are most of the dispatcher's cost per
		// delivery. A claim is never put off for longer than claimBatchWait.
		batching := false
		if free > 0 && !s.bufferLow() {
			if wait := time.Until(lastClaim.Add(claimBatchWait)); wait > 0 {
				free, batching = 0, true
				batchTimer.Reset(wait)
			}
		}
		var dueAt time.Time // when to look again; zero: only when something happens
		if free > 0 {
			view := s.reg.claimView()
			ex := s.exclusions(view, perEndpoint, now, false)
			exclude, reopen := ex.exclude, ex.reopen
			params := ClaimParams{Now: now, Limit: free, Owner: s.id, LeaseUntil: now.Add(s.cfg.lease),
				ExcludeEndpoints: exclude, MaxPerEndpoint: ex.capPer, Ordered: view.fifo}
			if len(ex.failing) > 0 {
				// Healthy endpoints first; then the failing ones, within their share.
				params.ExcludeEndpoints = append(exclude[:len(exclude):len(exclude)], ex.failing...)
			}
			lastClaim = time.Now()
			ds, err := s.claim(params, claimed[:0])
			if err == nil && len(ex.failing) > 0 && len(ds) < free && ex.failingRoom > 0 {
				params.ExcludeEndpoints, params.Limit = exclude, min(free-len(ds), ex.failingRoom)
				ds, err = s.claim(params, ds)
			}
			take := func(ds []Delivery) {
				for _, d := range ds {
					inflight++
					perEndpoint[d.EndpointID]++
					if len(view.limited) > 0 {
						if e, ok := s.reg.get(d.EndpointID); ok && e.limiter != nil {
							e.limiter.AllowN(now, 1) // spend the token the exclusions counted
						}
					}
					s.work <- d
				}
			}
			take(ds)
			if err == nil && ex.atFairShare && len(ds) < free {
				// Nothing else could use the rest: endpoints at their fair share may burst
				// beyond it (WithEndpointConcurrency's default), healthy ones only.
				bx := s.exclusions(view, perEndpoint, now, true)
				before := len(ds)
				ds, err = s.claim(ClaimParams{Now: now, Limit: free - len(ds), Owner: s.id,
					LeaseUntil: params.LeaseUntil, ExcludeEndpoints: append(bx.exclude, bx.failing...),
					MaxPerEndpoint: bx.capPer, Ordered: view.fifo}, ds)
				take(ds[before:])
			}
			clear(ds) // the bodies are the workers' now; the slice is reused
			claimed = ds[:0]
			if !reopen.IsZero() && (dueAt.IsZero() || reopen.Before(dueAt)) {
				dueAt = reopen
			}
			switch {
			case err != nil:
				s.log.Error("webhook: claiming deliveries failed; retrying", zap.Error(err))
				dueAt = now.Add(storeErrorBackoff)
			case len(ds) == free:
				continue // perhaps more is due
			case len(ds) > 0:
				// Some but not all slots filled. The attempts just handed out will signal
				// when they finish, and the dispatcher claims again then; it asks when work
				// is next due only once a claim finds nothing, sparing a remote store a
				// round trip per claim.
				idleClaims = 0
			default:
				next, err := s.store.NextDue(s.baseCtx, exclude)
				switch {
				case err != nil:
					s.log.Error("webhook: reading the next due time failed; retrying", zap.Error(err))
					dueAt = now.Add(storeErrorBackoff)
				case next.IsZero():
				case !dueAt.IsZero() && dueAt.Before(next):
					// an excluded endpoint reopens first
				case !next.After(now):
					// The store says work is due but gave none: back off a little rather
					// than spin, growing to the poll interval.
					idleClaims++
					dueAt = now.Add(min(time.Duration(idleClaims)*10*time.Millisecond, s.cfg.poll))
				default:
					idleClaims = 0
					dueAt = next
				}
			}
		}
		if free == 0 {
			// Every worker is busy and the buffer full (or full enough, batching):
			// nothing needs claiming until an attempt finishes.
			var batchDone <-chan time.Time
			if batching {
				batchDone = batchTimer.C
			}
			select {
			case <-s.stop:
			case <-s.freed:
			case <-batchDone:
			}
			if batching {
				batchTimer.Stop()
			}
			continue
		}
		pollAt := now.Add(s.cfg.poll)
		if dueAt.IsZero() || dueAt.After(pollAt) {
			dueAt = pollAt
		}
		if timer == nil || dueAt.Before(timerAt) {
			if timer != nil {
				timer.Stop()
			}
			timer, timerAt = s.clock.NewTimerAt(dueAt), dueAt
		}
		select {
		case <-s.stop:
		case <-s.wake:
		case <-s.freed:
		case <-timer.C():
			timer = nil
		case <-notify:
		}
	}
}

// claimLimits says what the next claim may take.
type claimLimits struct {
	// exclude lists endpoints that must not be claimed now: disabled ones, those at
	// their concurrency limit, those whose circuit is open or that asked for a pause,
	// rate-limited ones out of tokens, and failing ones once they hold their share.
	exclude []string
	// capPer is the most any one endpoint may get from the claim: the least room any
	// endpoint has, so a single claim cannot push one past its limit (a smaller claim
	// than needed only means another claim right after).
	capPer int
	// failing lists endpoints whose last attempt failed and which may still be claimed,
	// together at most failingRoom more deliveries (DefaultFailingShare).
	failing     []string
	failingRoom int
	// reopen is the earliest time an excluded endpoint becomes available again.
	reopen time.Time
	// atFairShare: some endpoint is excluded only because it holds its default fair
	// share of the workers, and may burst beyond it if nothing else is due.
	atFairShare bool
}

// exclusions computes the limits of a claim at now. With burst, an endpoint without a
// limit of its own may hold up to the burst limit instead of its fair share.
func (s *Sender) exclusions(view claimView, perEndpoint map[string]int, now time.Time, burst bool) claimLimits {
	out := append(make([]string, 0, len(view.disabled)+4), view.disabled...)
	fair := s.claimLimit(s.cfg.endpointLimit)
	burstClaims, _ := s.burstLimits(view.enabled)
	if burst || (burstClaims > 0 && view.enabled <= 1) {
		// A lone endpoint bursts at once: no other endpoint's claim to yield to first.
		fair = burstClaims
	}
	capPer := fair
	if view.minMaxInFlight > 0 {
		capPer = min(capPer, s.claimLimit(view.minMaxInFlight))
	}
	var halfOpen, failing []string
	out, reopen := s.health.blocked(now, out, func(id string) { halfOpen = append(halfOpen, id) },
		func(id string) { failing = append(failing, id) })
	atFairShare := false
	room := func(id string, limit int) bool {
		if n := perEndpoint[id]; n < limit {
			capPer = min(capPer, limit-n)
			return true
		}
		out = append(out, id)
		return false
	}
	for id := range perEndpoint {
		limit, own := fair, false
		if e, ok := s.reg.get(id); ok && e.ep.Ordered {
			limit, own = 1, true
		} else if ok && e.ep.MaxInFlight > 0 {
			limit, own = s.claimLimit(e.ep.MaxInFlight), true
		}
		if !room(id, limit) && !own && burstClaims > fair {
			atFairShare = true
		}
	}
	for _, id := range halfOpen {
		room(id, 1) // one probe at a time
	}
	for _, e := range view.limited {
		tokens := e.limiter.TokensAt(now)
		if tokens >= 1 {
			capPer = min(capPer, int(tokens))
			continue
		}
		out = append(out, e.ep.ID)
		next := now.Add(time.Duration((1 - tokens) / float64(e.limiter.Limit()) * float64(time.Second)))
		if reopen.IsZero() || next.Before(reopen) {
			reopen = next
		}
	}
	l := claimLimits{capPer: max(capPer, 1), reopen: reopen, atFairShare: atFairShare}
	if len(failing) > 0 {
		held := 0
		for _, id := range failing {
			held += perEndpoint[id]
		}
		if share := max(1, s.cfg.workers*DefaultFailingShare/100); held < share {
			l.failing, l.failingRoom = failing, share-held
		} else {
			out = append(out, failing...)
		}
	}
	l.exclude = out
	return l
}

// burstLimits returns how many deliveries an endpoint without a limit of its own may
// hold claimed when it bursts, and how many of those may be attempts at once (0, 0: no
// bursting, WithEndpointConcurrency was set). The reserve those leave is for other
// endpoints' work; with at most one endpoint enabled there is none to keep it for, and
// the lone endpoint may use every worker and the whole claim-ahead buffer.
func (s *Sender) burstLimits(enabled int) (claims, run int) {
	if s.burstRun == 0 {
		return 0, 0
	}
	if enabled <= 1 {
		return s.cfg.workers + s.prefetch, s.cfg.workers
	}
	return s.burstClaims, s.burstRun
}

// claimLimit is how many deliveries of one endpoint may be claimed at once, given its
// limit on attempts in flight. Claimed deliveries include those buffered for the
// workers, any of which may start next, so a limit below the worker count caps claims
// at the limit itself; one at or above it cannot be exceeded by the workers, so the
// endpoint may also use the buffer.
func (s *Sender) claimLimit(inFlight int) int {
	if inFlight >= s.cfg.workers {
		return s.cfg.workers + s.prefetch
	}
	return inFlight
}

// prune deletes finished deliveries past their retention, every DefaultPruneInterval,
// and has the health table forget what no attempt in flight can still refer to.
func (s *Sender) prune() {
	defer s.loopsDone.Done()
	for {
		t := s.clock.NewTimerAt(s.clock.Now().Add(DefaultPruneInterval))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C():
		}
		now := s.clock.Now()
		s.health.sweep(now)
		if s.cfg.retention < 0 && s.cfg.failedRetention < 0 {
			continue
		}
		var p PruneParams
		if s.cfg.retention > 0 {
			p.SucceededBefore = now.Add(-s.cfg.retention)
		}
		if s.cfg.failedRetention > 0 {
			p.FailedBefore = now.Add(-s.cfg.failedRetention)
		}
		n, err := s.store.Prune(s.baseCtx, p)
		if err != nil {
			s.log.Error("webhook: pruning finished deliveries failed", zap.Error(err))
		} else if n > 0 {
			s.log.Debug("webhook: pruned finished deliveries", zap.Int("count", n))
		}
	}
}

// worker runs attempts handed out by the dispatcher until Close closes the work channel.
func (s *Sender) worker() {
	defer s.workers.Done()
	// One timer and abort hook for all of this worker's attempts (attemptClock).
	clock, release := newAttemptClock(s.baseCtx)
	defer release()
	for d := range s.work {
		if s.bufferLow() {
			s.signalFreed() // time for the dispatcher to claim
		}
		ok, counted := s.start(d)
		for ok {
			s.attempt(clock, d)
			d, ok = s.done(d.EndpointID, counted)
		}
	}
}

// start reports whether d's attempt may start now. An endpoint bursting past its fair
// share (see WithEndpointConcurrency) holds more claims than it may run attempts: a
// delivery beyond its running limit is set aside, to be run by the worker that finishes
// one of the endpoint's attempts, and this worker goes on to the next in the buffer.
// So a bursting endpoint never ties up the reserved workers, even if every attempt of
// it hangs, and deliveries of other endpoints claimed behind its own are not stuck.
// counted says whether the attempt was counted against the running limit, for done.
func (s *Sender) start(d Delivery) (ok, counted bool) {
	if s.burstRun == 0 {
		return true, false
	}
	if e, ok := s.reg.get(d.EndpointID); ok && (e.ep.MaxInFlight > 0 || e.ep.Ordered) {
		return true, false // its own limit caps its claims, and so its attempts
	}
	_, run := s.burstLimits(s.reg.enabledCount())
	if run >= s.cfg.workers {
		// A lone endpoint may run on every worker: nothing to count. Should another
		// endpoint be enabled meanwhile, these attempts go uncounted, and the reserve
		// is kept once they end.
		return true, false
	}
	s.finMu.Lock()
	defer s.finMu.Unlock()
	if s.running[d.EndpointID] >= run {
		q := s.deferred[d.EndpointID]
		if q == nil {
			q, s.spareDeferred = s.spareDeferred, nil
			if q == nil {
				q = new(deliveryFIFO)
			}
			s.deferred[d.EndpointID] = q
		}
		q.push(d)
		return false, false
	}
	s.running[d.EndpointID]++
	return true, true
}

// done reports a finished attempt to the dispatcher, and, if the attempt was counted
// (see start), returns a delivery of the same endpoint that start set aside, if any, for
// the caller to attempt next, still counted.
func (s *Sender) done(endpointID string, counted bool) (Delivery, bool) {
	var next Delivery
	ok := false
	s.finMu.Lock()
	s.finished = append(s.finished, endpointID)
	if n := s.running[endpointID]; counted {
		if q := s.deferred[endpointID]; q != nil {
			next, ok = q.pop(), true
			if q.len() == 0 {
				delete(s.deferred, endpointID)
				s.spareDeferred = q // most often the same endpoint bursts again
			}
		} else if n <= 1 {
			delete(s.running, endpointID)
		} else {
			s.running[endpointID] = n - 1
		}
	}
	s.finMu.Unlock()
	if s.bufferLow() {
		// Otherwise the dispatcher would only put a claim off (batching); it learns
		// of this finish when the buffer runs low.
		s.signalFreed()
	}
	return next, ok
}

// bufferLow reports whether the claim-ahead buffer holds less than half its size: time
// for the dispatcher to claim. The deliveries a bursting endpoint set aside do not
// count: only that endpoint's own finishing attempts can run them, so they keep no other
// endpoint's work going.
func (s *Sender) bufferLow() bool {
	return len(s.work) < max(1, s.prefetch/2)
}

// deliveryFIFO is a queue of deliveries that keeps its array from one use to the next:
// at full speed every delivery of a bursting endpoint passes through one (see start),
// and a slice popped from the front reallocated as it was appended to.
type deliveryFIFO struct {
	items []Delivery
	head  int
}

func (q *deliveryFIFO) len() int { return len(q.items) - q.head }

func (q *deliveryFIFO) push(d Delivery) {
	if q.head > 0 && len(q.items) == cap(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, d)
}

// pop removes and returns the oldest delivery; the queue must not be empty.
func (q *deliveryFIFO) pop() Delivery {
	d := q.items[q.head]
	q.items[q.head] = Delivery{} // the body and strings are not kept alive
	if q.head++; q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return d
}

// signalFreed tells the dispatcher that it may claim: an attempt finished, or the
// claim-ahead buffer ran low.
func (s *Sender) signalFreed() {
	select {
	case s.freed <- struct{}{}:
	default: // the dispatcher has yet to see an earlier signal; it collects this too
	}
}

// attempt makes one attempt of d and records its result. A delivery that may not be
// attempted now (Close has begun, its lease could lapse mid-attempt, its endpoint was
// disabled, paused or its circuit opened since the claim) is handed back untouched.
func (s *Sender) attempt(clock *attemptClock, d Delivery) {
	e, ok := s.reg.get(d.EndpointID)
	now := s.clock.Now()
	select {
	case <-s.stop:
		// Claimed ahead but not started when Close began: the next Sender takes it.
		s.handBack(d)
		return
	default:
	}
	if !d.LeaseExpiresAt.IsZero() && now.Add(s.cfg.timeout).After(d.LeaseExpiresAt) {
		// It waited in the buffer so long (behind attempts that ran to their timeout)
		// that an attempt could outlive the lease, and another Sender could take it
		// mid-attempt: hand it back instead, to be claimed afresh.
		s.log.Debug("webhook: handing back a claimed delivery whose lease would lapse mid-attempt",
			zap.String("delivery_id", d.ID), zap.Time("lease_expires_at", d.LeaseExpiresAt))
		s.handBack(d)
		return
	}
	if !ok {
		s.finish(d, nil, RecordParams{State: StateFailed,
			Reason: fmt.Sprintf("endpoint %q was removed; no request was sent", d.EndpointID)}, Permanent)
		return
	}
	if e.ep.Disabled {
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
	a, retryAfter, err := s.post(clock, e, d, now)
	// The attempt's end, for its retry, health and record. With the system clock it is
	// its start plus the duration post measured from it on the monotonic clock, which
	// spares a clock read per attempt.
	end := now.Add(a.Duration)
	if !s.systemClock {
		end = s.clock.Now()
	}
	verdict := Permanent
	if err == nil || !errors.As(err, new(*signError)) {
		verdict = s.retry.Classify(a.StatusCode, err)
	}
	p := RecordParams{Attempt: s.attemptRecord(clock, a), Now: end}
	aborted := s.baseCtx.Err() != nil && a.StatusCode == 0
	ev := classifyHealth(a.StatusCode, err, verdict)
	switch {
	case aborted:
		// Close aborted the attempt: try again as soon as a Sender runs.
		p.State, p.NextAttemptAt, verdict, ev = StatePending, end, Retry, healthNone
	case verdict == Delivered:
		p.State = StateSucceeded
	case verdict == Retry:
		if at, ok := s.retry.next(end, d.QueuedAt, d.Attempts+1, retryAfter); ok {
			p.State, p.NextAttemptAt = StatePending, at
			if retryAfter > 0 {
				// The receiver paused the endpoint (below) rather than failed this
				// delivery: it keeps its place in the endpoint's line and goes first
				// when the pause ends, not behind every delivery due meanwhile.
				p.NextAttemptAt = d.NextAttemptAt
			}
		} else {
			p.State = StateFailed
		}
	default:
		p.State = StateFailed
	}
	// Health first, so that whoever the attempt hook tells already sees it.
	var pauseUntil time.Time
	if retryAfter > 0 && !aborted {
		pauseUntil = end.Add(min(retryAfter, s.retry.MaxRetryAfter))
	}
	if e.ep.Ordered && p.State == StatePending && p.NextAttemptAt.After(pauseUntil) {
		// The endpoint's later deliveries wait for this one: nothing to claim there
		// before its retry, so do not look.
		pauseUntil = p.NextAttemptAt
	}
	ch := s.health.record(e.ep.ID, tk, end, ev, pauseUntil)
	s.finish(d, e, p, verdict)
	if ch.transition != noTransition {
		s.circuitChanged(e.ep.ID, ch.health)
	}
	switch {
	case ev == healthGone:
		s.disableEndpoint(e, "the endpoint answered 410 Gone")
	case ch.disable != "":
		s.disableEndpoint(e, ch.disable)
	}
}

// handBack returns a claimed delivery to the store as it was, no attempt made: pending,
// due when it was due.
func (s *Sender) handBack(d Delivery) {
	s.finish(d, nil, RecordParams{State: StatePending, NextAttemptAt: d.NextAttemptAt}, 0)
}

// circuitChanged logs an endpoint's circuit opening or closing and tells the hook.
func (s *Sender) circuitChanged(id string, h EndpointHealth) {
	s.log.Info("webhook: endpoint circuit "+h.Circuit.String(), zap.String("endpoint_id", id),
		zap.Int("consecutive_failures", h.ConsecutiveFailures), zap.Time("open_until", h.OpenUntil))
	if s.cfg.hooks.OnCircuitChange != nil {
		s.cfg.hooks.OnCircuitChange(id, h)
	}
}

// attemptRecord returns a's record for RecordParams. With the memory store, finish
// records it before it returns, and the store copies it: the worker's own record then
// serves every attempt of the worker. Otherwise a recorder writes it later, and it gets
// an allocation of its own. (&a would be moved to the heap on every attempt.)
func (s *Sender) attemptRecord(clock *attemptClock, a Attempt) *Attempt {
	if s.records == nil {
		clock.rec = a
		return &clock.rec
	}
	rec := new(Attempt)
	*rec = a
	return rec
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

type signError struct{ err error }

func (e *signError) Error() string { return "signing failed: " + e.err.Error() }
func (e *signError) Unwrap() error { return e.err }

// post sends one request and returns its record, the Retry-After asked for (0 if none)
// and the transport error, redacted.
func (s *Sender) post(clock *attemptClock, e *endpointEntry, d Delivery, now time.Time) (Attempt, time.Duration, error) {
	a := Attempt{DeliveryID: d.ID, StartedAt: now}
	start := now // the system clock's reading, monotonic part and all
	if !s.systemClock {
		start = time.Now() // the deadline and duration are real time, whatever the clock
	}
	ctx := clock.begin(start.Add(s.cfg.timeout))
	defer clock.end() // after the response body is read and closed
	// The request is built by hand around the endpoint's parsed URL: parsing it again
	// for every attempt is measurable on the hot path. Header slices shared between
	// requests are never written by net/http.
	h := make(http.Header, len(e.header)+6)
	for k, v := range e.header {
		h[k] = v
	}
	h["Content-Type"] = jsonContentType
	h["User-Agent"] = s.userAgent
	if d.Version == s.cfg.version {
		h[s.versionHeader] = s.defaultVersion // most events: no slice per attempt
	} else {
		h[s.versionHeader] = []string{d.Version}
	}
	signer := e.ep.Signer
	if signer == nil {
		signer = s.cfg.signer
	}
	if err := signer.Sign(h, Message{ID: d.EventID, Timestamp: now, Body: d.Body}, e.secrets); err != nil {
		serr := &signError{err: err}
		a.Error = serr.Error()
		return a, 0, serr
	}
	if _, ok := h[canonicalTimestamp]; !ok { // signers other than StandardSigner
		h[canonicalID] = []string{d.EventID}
		h[canonicalTimestamp] = []string{formatUnix(now)}
	}
	body := d.Body
	req := (&http.Request{
		Method: http.MethodPost, URL: e.url, Host: e.url.Host, Header: h,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: newRequestBody(body), ContentLength: int64(len(body)),
		// GetBody lets the transport resend on a keep-alive connection the server closed.
		GetBody: func() (io.ReadCloser, error) { return newRequestBody(body), nil },
	}).WithContext(ctx)
	// Straight to the transport: http.Client would only add redirect handling (never
	// wanted here: a 3xx is an answer) and copy the headers for it on every request.
	resp, err := s.cfg.transport.RoundTrip(req)
	if err != nil {
		err = &url.Error{Op: "Post", URL: e.redacted, Err: err}
		a.Duration = time.Since(start)
		a.Error = err.Error()
		return a, 0, err
	}
	a.StatusCode = resp.StatusCode
	var retryAfter time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			retryAfter = max(ra, MinRetryAfter) // so "0" cannot spin through the attempts
		}
	}
	a.ResponseBody, err = readResponse(resp.Body, s.cfg.drainBytes, s.cfg.recordBytes)
	resp.Body.Close()
	a.Duration = time.Since(start)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Error = fmt.Sprintf("%s answered HTTP %d", e.redacted, resp.StatusCode)
	} else if err != nil {
		// The receiver accepted the request; a body cut short by the timeout does not
		// undo that, but it is noted.
		s.log.Debug("webhook: reading response body failed", zap.String("delivery_id", d.ID), zap.Error(redactError(err, e.redacted)))
	}
	return a, retryAfter, nil
}

var jsonContentType = []string{"application/json"}

// newRequestBody reads a request body from bytes. It must stay an io.NopCloser around a
// *bytes.Reader: net/http recognises that as in memory and writes the headers and the
// body in one syscall, where any other reader type makes it flush the headers first and
// costs a second write (and a second segment for the receiver) per attempt. Reader and
// NopCloser are an allocation each (40 and 16 bytes; the allocation profile of
// BenchmarkDeliver counts one of each per attempt): net/http checks for io's own
// NopCloser types, so no single type of this package can stand in for the pair.
func newRequestBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// readResponse reads up to drain bytes, so the connection can be reused, and returns a
// copy of the first record bytes (nil for an empty body). The read buffer is pooled:
// most receivers answer with an empty or tiny body, which then costs no allocation.
func readResponse(body io.Reader, drain int64, record int) ([]byte, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var head []byte
	var read int64
	for read < drain {
		n, err := body.Read(buf[:min(int64(len(buf)), drain-read)])
		if len(head) < record && n > 0 {
			head = append(head, buf[:min(n, record-len(head))]...)
		}
		read += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return head, err
		}
	}
	return head, nil
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// redactError replaces the URL in a *url.Error with its redacted form, so credentials and
// query strings never reach logs, errors or attempt records.
func redactError(err error, redacted string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		c := *ue
		c.URL = redacted
		return &c
	}
	return err
}

// finish records the attempt's result, then logs and calls hooks. p.Now is the clock's
// time unless the caller set it.
func (s *Sender) finish(d Delivery, e *endpointEntry, p RecordParams, verdict Verdict) {
	p.DeliveryID, p.Owner = d.ID, s.id
	if p.Now.IsZero() {
		p.Now = s.clock.Now()
	}
	if s.records != nil {
		// A durable store's write takes far longer than the request did; the worker goes
		// back for the next delivery while a recorder writes this result. The delivery
		// stays leased (in flight) until the write lands, so nothing else takes it.
		s.records <- recordJob{d: d, e: e, p: p, verdict: verdict}
		return
	}
	s.record(d, e, p, verdict)
}

// recordJob is an attempt's result on its way to the store.
type recordJob struct {
	d       Delivery
	e       *endpointEntry
	p       RecordParams
	verdict Verdict
}

// recorder writes attempt results for stores that write asynchronously.
func (s *Sender) recorder() {
	defer s.recorders.Done()
	for j := range s.records {
		s.record(j.d, j.e, j.p, j.verdict)
	}
}

// record writes an attempt's result to the store, then logs and calls hooks.
func (s *Sender) record(d Delivery, e *endpointEntry, p RecordParams, verdict Verdict) {
	var err error
	if s.records == nil {
		// The memory store's Record does not block, and a timeout context per attempt
		// is measurable at full speed.
		err = s.store.Record(context.Background(), p)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		err = s.store.Record(ctx, p)
		cancel()
	}
	if err != nil {
		// The delivery stays in flight until its lease expires, then is attempted again:
		// at least once, never lost.
		level := zap.ErrorLevel
		if errors.Is(err, ErrLeaseLost) {
			level = zap.WarnLevel
		}
		if ce := s.log.Check(level, "webhook: recording an attempt failed; the delivery will be retried after its lease expires"); ce != nil {
			ce.Write(zap.String("delivery_id", d.ID), zap.String("endpoint_id", d.EndpointID), zap.Error(err))
		}
		return
	}
	after := d
	after.Apply(p)
	if p.State.Finished() {
		s.passRoom()
	}
	if p.Attempt == nil && p.State == StatePending {
		s.poke() // handed back untouched: claimable again now
		return
	}
	s.logAttempt(after, p, verdict)
	if s.cfg.hooks.OnAttempt != nil {
		var a Attempt
		if p.Attempt != nil {
			a = *p.Attempt
			a.Number = 0 // the store numbered it; Delivery.Attempts has the count
		}
		s.cfg.hooks.OnAttempt(AttemptReport{Delivery: after, Attempt: a, Verdict: verdict, Final: p.State.Finished()})
	}
}

func (s *Sender) logAttempt(d Delivery, p RecordParams, verdict Verdict) {
	level := zapcore.DebugLevel
	msg := "webhook: delivered"
	switch p.State {
	case StatePending:
		level, msg = zapcore.InfoLevel, "webhook: attempt failed; will retry"
	case StateFailed:
		level, msg = zapcore.WarnLevel, "webhook: delivery failed permanently"
	}
	ce := s.log.Check(level, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("delivery_id", d.ID), zap.String("endpoint_id", d.EndpointID),
		zap.String("event_id", d.EventID), zap.String("event_type", d.EventType),
		zap.Int("attempt", d.Attempts), zap.Stringer("verdict", verdict),
	}
	if a := p.Attempt; a != nil {
		fields = append(fields, zap.Int("status", a.StatusCode), zap.Duration("latency", a.Duration))
		if a.Error != "" {
			fields = append(fields, zap.String("error", a.Error))
		}
	} else if d.LastError != "" {
		fields = append(fields, zap.String("error", d.LastError))
	}
	if p.State == StatePending {
		fields = append(fields, zap.Time("next_attempt_at", p.NextAttemptAt))
	}
	ce.Write(fields...)
}

// claim appends what a Claim finds to dst, which dispatch reuses from one round to the
// next. The memory store appends in place; another store's slice is copied, since the
// store may keep it.
func (s *Sender) claim(p ClaimParams, dst []Delivery) ([]Delivery, error) {
	if m := s.mem; m != nil {
		return m.claimAppend(s.baseCtx, p, dst)
	}
	ds, err := s.store.Claim(s.baseCtx, p)
	return append(dst, ds...), err
}
