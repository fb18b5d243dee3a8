package webhook

import (
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
	// DefaultFailingShare is the share of workers, in percent, that endpoints whose last
	// attempt failed may hold together, so that many endpoints hanging until the timeout
	// at once cannot take the workers from the healthy ones.
	DefaultFailingShare = 25
)

// CircuitState is the state of an endpoint's circuit breaker.
type CircuitState int

// Circuit states. While a circuit is open, the endpoint's deliveries wait in the store
// without using up their attempts.
const (
	CircuitClosed   CircuitState = iota // attempts flow normally
	CircuitOpen                         // no attempts until OpenUntil
	CircuitHalfOpen                     // one probe attempt at a time; success closes it
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
	opens       int // consecutive openings, for the growing cool-down
}

// healthTable holds every endpoint's health. Workers update it after each attempt; the
// dispatcher reads it to exclude endpoints from claims.
type healthTable struct {
	mu           sync.Mutex
	m            map[string]*EndpointHealth
	entries      atomic.Int32 // len(m), for pausedUntil to read without the lock
	threshold    int          // <= 0: no breaker
	cooldown     time.Duration
	maxCooldown  time.Duration
	disableAfter time.Duration // <= 0: never
}

// healthChange reports what an attempt changed.
type healthChange struct {
	circuitChanged bool
	health         EndpointHealth
	disable        string // a reason when the endpoint must be disabled
}

// record notes an attempt's outcome for an endpoint. pauseUntil, when set, pauses the
// endpoint (Retry-After).
func (t *healthTable) record(id string, now time.Time, ok bool, pauseUntil time.Time) healthChange {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.m[id]
	if h == nil {
		if ok && pauseUntil.IsZero() {
			return healthChange{} // healthy endpoints cost no entry
		}
		h = &EndpointHealth{}
		t.m[id] = h
		t.entries.Add(1)
	}
	before := h.Circuit
	var ch healthChange
	if pauseUntil.After(h.PausedUntil) {
		h.PausedUntil = pauseUntil
	}
	if ok {
		*h = EndpointHealth{PausedUntil: h.PausedUntil}
	} else {
		h.ConsecutiveFailures++
		if h.FailingSince.IsZero() {
			h.FailingSince = now
		}
		if t.threshold > 0 && (h.Circuit == CircuitHalfOpen || h.ConsecutiveFailures >= t.threshold) {
			h.opens++
			cool := t.cooldown << min(h.opens-1, 30)
			if cool <= 0 || cool > t.maxCooldown {
				cool = t.maxCooldown
			}
			h.Circuit, h.OpenUntil = CircuitOpen, now.Add(cool)
		}
		if t.disableAfter > 0 && now.Sub(h.FailingSince) >= t.disableAfter {
			ch.disable = fmt.Sprintf("every attempt has failed since %s (%d in a row)", h.FailingSince.UTC().Format(time.RFC3339), h.ConsecutiveFailures)
		}
	}
	ch.circuitChanged = h.Circuit != before
	ch.health = *h
	if ok && h.PausedUntil.IsZero() {
		delete(t.m, id)
		t.entries.Add(-1)
	}
	return ch
}

// pausedUntil returns when an endpoint's Retry-After pause ends, zero if it has none.
// Every attempt asks, so a table with no entries (every endpoint healthy) answers
// without the lock.
func (t *healthTable) pausedUntil(id string) time.Time {
	if t.entries.Load() == 0 {
		return time.Time{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.m[id]; h != nil {
		return h.PausedUntil
	}
	return time.Time{}
}

// get returns an endpoint's health.
func (t *healthTable) get(id string) EndpointHealth {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.m[id]; h != nil {
		return *h
	}
	return EndpointHealth{}
}

// blocked appends to exclude the endpoints that may not be attempted at now, reports the
// half-open ones (at most one attempt in flight) and the other failing ones (whose last
// attempt failed), and returns the earliest time an excluded one reopens.
func (t *healthTable) blocked(now time.Time, exclude []string, halfOpen, failing func(id string)) ([]string, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var reopen time.Time
	soonest := func(at time.Time) {
		if reopen.IsZero() || at.Before(reopen) {
			reopen = at
		}
	}
	for id, h := range t.m {
		if h.PausedUntil.After(now) {
			exclude = append(exclude, id)
			soonest(h.PausedUntil)
			continue
		}
		switch {
		case h.Circuit == CircuitOpen && h.OpenUntil.After(now):
			exclude = append(exclude, id)
			soonest(h.OpenUntil)
		case h.Circuit == CircuitOpen:
			h.Circuit = CircuitHalfOpen
			halfOpen(id)
		case h.Circuit == CircuitHalfOpen:
			halfOpen(id)
		case h.ConsecutiveFailures > 0:
			failing(id)
		}
	}
	return exclude, reopen
}
