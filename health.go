package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Circuit breaker and auto-disable defaults.
const (
	// DefaultBreakerThreshold is how many consecutive failed attempts open an endpoint's
	// circuit.
	DefaultBreakerThreshold = 5
	// DefaultBreakerCooldown is how long a newly opened circuit stays open before one
	// probe attempt is let through. It doubles each time the probe fails, up to
	// DefaultBreakerMaxCooldown.
	DefaultBreakerCooldown    = 30 * time.Second
	DefaultBreakerMaxCooldown = 30 * time.Minute
	// DefaultDisableAfter disables an endpoint that has failed every attempt for this
	// long, as the Standard Webhooks guidance suggests.
	DefaultDisableAfter = 5 * 24 * time.Hour
)

// CircuitState is the state of an endpoint's circuit breaker.
type CircuitState int

// Circuit states. While a circuit is open, the endpoint's deliveries wait in the store
// without using up their attempts.
const (
	CircuitClosed   CircuitState = iota // attempts flow normally
	CircuitOpen                         // no attempts until OpenUntil
	CircuitHalfOpen                     // OpenUntil has passed: one probe attempt at a time; success closes it
)

func (c CircuitState) String() string {
	switch c {
	case CircuitClosed:
		return "closed"
	case CircuitOpen:
		return "open"
	case CircuitHalfOpen:
		return "half-open"
	}
	return "CircuitState(" + strconv.Itoa(int(c)) + ")"
}

// EndpointHealth is what the Sender knows of an endpoint's recent attempts. It is kept in
// memory by each Sender.
type EndpointHealth struct {
	Circuit             CircuitState
	ConsecutiveFailures int
	// FailingSince is when the current run of failures began; zero after a success.
	FailingSince time.Time
	// OpenUntil is when an open circuit lets a probe through.
	OpenUntil time.Time
	// PausedUntil is when a 429 or 503 with Retry-After lets attempts resume.
	PausedUntil time.Time
}

// healthEvent is what one attempt's result says about its endpoint's health.
type healthEvent int

const (
	// healthNone: nothing about the endpoint (the request was never answered because
	// signing failed, Close aborted it, or the destination guard refused the address).
	healthNone healthEvent = iota
	healthSuccess
	// healthFailure: no answer (connection refused, timeout) or a failing status.
	healthFailure
	// healthRateLimited: 429, the receiver asking to slow down. It pauses the endpoint
	// (Retry-After) but says nothing against its health.
	healthRateLimited
	// healthGone: 410, the receiver saying the endpoint is no more. It disables the
	// endpoint; it is not a failure of its health either.
	healthGone
)

// classifyHealth is what an attempt's result says about its endpoint: a pure function of
// the status (0 for no answer), the attempt's error and its verdict.
func classifyHealth(status int, err error, verdict Verdict) healthEvent {
	if err != nil && status == 0 {
		if isSignError(err) || errors.Is(err, ErrDestinationBlocked) {
			return healthNone
		}
		return healthFailure
	}
	switch {
	case verdict == Delivered:
		return healthSuccess
	case status == 429:
		return healthRateLimited
	case verdict == Gone:
		return healthGone
	}
	return healthFailure
}

// breakerPolicy is WithCircuitBreaker and WithAutoDisable's configuration.
type breakerPolicy struct {
	threshold    int // <= 0: no breaker
	cooldown     time.Duration
	maxCooldown  time.Duration
	disableAfter time.Duration // <= 0: never
}

// endpointState is one endpoint's breaker state. It is a state machine with four
// transitions, each caused by one event:
//
//	closed    --threshold-th consecutive failure-->  open (cool-down: the first)
//	open      --OpenUntil passes---------------->    half-open (derived from time, not stored)
//	half-open --the probe succeeds-------------->    closed
//	half-open --the probe fails----------------->    open (cool-down doubled, up to the max)
//
// and a reset, by the user, back to closed from anywhere. Every transition starts a new
// epoch: the result of an attempt admitted in an earlier epoch is stale and changes
// nothing, so attempts in flight when the circuit opened (or was reset) cannot reopen it,
// extend it, or count against the fresh state.
type endpointState struct {
	open         bool
	failures     int
	failingSince time.Time
	openUntil    time.Time
	cooldown     time.Duration // the current cool-down, doubled by each failed probe
	pausedUntil  time.Time     // Retry-After
	probing      bool          // a half-open circuit's probe is in flight
	epoch        uint64
	changedAt    time.Time // when the epoch began
}

// circuitAt is the circuit's state at now.
func (st *endpointState) circuitAt(now time.Time) CircuitState {
	switch {
	case !st.open:
		return CircuitClosed
	case now.Before(st.openUntil):
		return CircuitOpen
	}
	return CircuitHalfOpen
}

func (st *endpointState) public(now time.Time) EndpointHealth {
	h := EndpointHealth{Circuit: st.circuitAt(now), ConsecutiveFailures: st.failures,
		FailingSince: st.failingSince, PausedUntil: st.pausedUntil}
	if st.open {
		h.OpenUntil = st.openUntil
	}
	return h
}

// clean reports whether st says nothing an absent entry would not.
func (st *endpointState) clean(now time.Time) bool {
	return !st.open && st.failures == 0 && !st.probing && !st.pausedUntil.After(now)
}

// ticket is an admitted attempt's claim on its endpoint's state: the epoch it was
// admitted in, and whether it is a half-open circuit's probe.
type ticket struct {
	epoch uint64
	probe bool
}

// transition names what a step did to the circuit.
type transition int

const (
	noTransition transition = iota
	opened                  // closed -> open
	reopened                // half-open -> open, the probe failed
	closed                  // half-open -> closed, the probe succeeded (or a reset)
)

// step is the breaker's state machine: the state after an admitted attempt's result ev,
// at now. newEpoch is the epoch a transition starts. It reports the transition and
// whether the endpoint has failed long enough to be disabled.
func (p breakerPolicy) step(st endpointState, tk ticket, ev healthEvent, now time.Time, newEpoch uint64) (endpointState, transition, bool) {
	if tk.epoch != st.epoch {
		return st, noTransition, false // admitted before the last transition: stale
	}
	if tk.probe {
		st.probing = false
	}
	switch ev {
	case healthSuccess:
		wasOpen := st.open
		st.open, st.failures, st.failingSince, st.openUntil, st.cooldown = false, 0, time.Time{}, time.Time{}, 0
		if wasOpen {
			st.epoch, st.changedAt = newEpoch, now
			return st, closed, false
		}
	case healthFailure:
		st.failures++
		if st.failingSince.IsZero() {
			st.failingSince = now
		}
		tr := noTransition
		switch {
		case p.threshold <= 0:
		case !st.open && st.failures >= p.threshold:
			st.cooldown, tr = p.cooldown, opened
		case st.open && tk.probe:
			st.cooldown, tr = min(2*st.cooldown, p.maxCooldown), reopened
		}
		if tr != noTransition {
			st.open, st.openUntil = true, now.Add(st.cooldown)
			st.epoch, st.changedAt = newEpoch, now
		}
		return st, tr, p.disableAfter > 0 && now.Sub(st.failingSince) >= p.disableAfter
	}
	return st, noTransition, false
}

// healthTable holds every endpoint's breaker state and Retry-After pause. Workers admit
// each attempt through it and report each result to it; the dispatcher reads it to leave
// endpoints out of claims. Endpoints in good health have no entry.
type healthTable struct {
	policy breakerPolicy
	// staleAfter is how long an attempt can run (the lease): an entry whose epoch began
	// longer ago can be forgotten once clean, since no stale ticket is left.
	staleAfter time.Duration

	mu      sync.Mutex
	m       map[string]*endpointState
	entries atomic.Int32 // len(m), for admit to read without the lock
	epochs  uint64       // the last epoch handed out
}

func newHealthTable(p breakerPolicy, staleAfter time.Duration) *healthTable {
	return &healthTable{policy: p, staleAfter: staleAfter, m: map[string]*endpointState{}}
}

// healthChange reports what an attempt's result changed.
type healthChange struct {
	transition transition
	health     EndpointHealth
	disable    string // a reason when the endpoint must be disabled
}

// admit asks whether an attempt of endpoint id may start at now. It may not while the
// endpoint is paused or its circuit open, nor while a half-open circuit's probe is in
// flight; otherwise the attempt gets a ticket, and a half-open circuit's first attempt
// becomes its probe. Every admitted attempt must report its result with record.
func (t *healthTable) admit(id string, now time.Time) (ticket, bool) {
	if t.entries.Load() == 0 {
		return ticket{}, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[id]
	switch {
	case st == nil:
		return ticket{}, true
	case st.pausedUntil.After(now):
		return ticket{}, false
	}
	switch st.circuitAt(now) {
	case CircuitOpen:
		return ticket{}, false
	case CircuitHalfOpen:
		if st.probing {
			return ticket{}, false
		}
		st.probing = true
		return ticket{epoch: st.epoch, probe: true}, true
	}
	return ticket{epoch: st.epoch}, true
}

// record applies an admitted attempt's result, ended at now. pauseUntil, when set,
// pauses the endpoint (Retry-After), whatever the ticket's epoch: the receiver's ask to
// wait is never stale.
func (t *healthTable) record(id string, tk ticket, now time.Time, ev healthEvent, pauseUntil time.Time) healthChange {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[id]
	if st == nil {
		if pauseUntil.IsZero() && (ev != healthFailure || tk.epoch != 0) {
			return healthChange{} // nothing to change, or a ticket of a forgotten epoch
		}
		st = &endpointState{}
		t.m[id] = st
		t.entries.Add(1)
	}
	if pauseUntil.After(st.pausedUntil) {
		st.pausedUntil = pauseUntil
	}
	t.epochs++
	next, tr, disable := t.policy.step(*st, tk, ev, now, t.epochs)
	*st = next
	ch := healthChange{transition: tr, health: st.public(now)}
	if disable {
		ch.disable = fmt.Sprintf("every attempt has failed since %s (%d in a row)", st.failingSince.UTC().Format(time.RFC3339), st.failures)
	}
	if st.clean(now) && (st.epoch == 0 || now.Sub(st.changedAt) >= t.staleAfter) {
		t.forgetLocked(id)
	}
	return ch
}

// reset returns an endpoint to good health, the user having said it works again: closed,
// no failures, no pause. Attempts admitted before it count for nothing. It reports
// whether the circuit was open (or half-open).
func (t *healthTable) reset(id string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[id]
	if st == nil {
		st = &endpointState{}
		t.m[id] = st
		t.entries.Add(1)
	}
	wasOpen := st.open
	t.epochs++
	*st = endpointState{epoch: t.epochs, changedAt: now}
	return wasOpen
}

// sweep forgets the clean entries whose last transition is older than any attempt in
// flight can be.
func (t *healthTable) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, st := range t.m {
		if st.clean(now) && now.Sub(st.changedAt) >= t.staleAfter {
			t.forgetLocked(id)
		}
	}
}

func (t *healthTable) forgetLocked(id string) {
	delete(t.m, id)
	t.entries.Add(-1)
}

// get returns an endpoint's health at now.
func (t *healthTable) get(id string, now time.Time) EndpointHealth {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.m[id]; st != nil {
		return st.public(now)
	}
	return EndpointHealth{}
}

// blocked appends to exclude the endpoints that may not be attempted at now (paused,
// open, or half-open with the probe in flight), reports the half-open ones that may take
// their probe and the other failing ones (whose last attempt failed), and returns the
// earliest time an excluded one becomes available again. It changes nothing.
func (t *healthTable) blocked(now time.Time, exclude []string, halfOpen, failing func(id string)) ([]string, time.Time) {
	if t.entries.Load() == 0 {
		return exclude, time.Time{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var reopen time.Time
	soonest := func(at time.Time) {
		if reopen.IsZero() || at.Before(reopen) {
			reopen = at
		}
	}
	for id, st := range t.m {
		if st.pausedUntil.After(now) {
			exclude = append(exclude, id)
			soonest(st.pausedUntil)
			continue
		}
		switch st.circuitAt(now) {
		case CircuitOpen:
			exclude = append(exclude, id)
			soonest(st.openUntil)
		case CircuitHalfOpen:
			if st.probing {
				exclude = append(exclude, id) // the probe's end wakes the dispatcher
			} else {
				halfOpen(id)
			}
		default:
			if st.failures > 0 {
				failing(id)
			}
		}
	}
	return exclude, reopen
}
