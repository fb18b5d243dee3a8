package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestClassifyHealth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		status  int
		err     error
		verdict Verdict
		want    healthEvent
	}{
		{"2xx", 204, nil, Delivered, healthSuccess},
		{"5xx", 503, nil, Retry, healthFailure},
		{"404", 404, nil, Retry, healthFailure},
		{"a permanent 400", 400, nil, Permanent, healthFailure},
		{"429", 429, nil, Retry, healthRateLimited},
		{"410", 410, nil, Gone, healthGone},
		{"timeout", 0, context.DeadlineExceeded, Retry, healthFailure},
		{"refused", 0, errors.New("connection refused"), Retry, healthFailure},
		{"signing failed", 0, &signError{err: errors.New("bad key")}, Permanent, healthNone},
		{"guard refused", 0, fmt.Errorf("dial: %w", &DestinationError{Addr: netip.MustParseAddr("10.0.0.1")}), Permanent, healthNone},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, classifyHealth(tc.status, tc.err, tc.verdict), tc.name)
	}
}

// The breaker's transitions, one event at a time.
func TestBreakerStep(t *testing.T) {
	t.Parallel()
	p := breakerPolicy{threshold: 2, cooldown: time.Minute, maxCooldown: 3 * time.Minute, disableAfter: time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	open := func(until time.Time, cool time.Duration, epoch uint64, failures int) endpointState {
		return endpointState{open: true, failures: failures, failingSince: t0, openUntil: until, cooldown: cool, epoch: epoch}
	}
	cases := []struct {
		name   string
		st     endpointState
		tk     ticket
		ev     healthEvent
		now    time.Time
		want   endpointState
		tr     transition
		retire bool
	}{
		{"a first failure counts", endpointState{}, ticket{}, healthFailure, t0,
			endpointState{failures: 1, failingSince: t0}, noTransition, false},
		{"the threshold-th failure opens", endpointState{failures: 1, failingSince: t0}, ticket{}, healthFailure, at(time.Second),
			endpointState{open: true, failures: 2, failingSince: t0, openUntil: at(time.Second + time.Minute), cooldown: time.Minute, epoch: 9, changedAt: at(time.Second)},
			opened, false},
		{"a success resets the count", endpointState{failures: 1, failingSince: t0}, ticket{}, healthSuccess, t0,
			endpointState{}, noTransition, false},
		{"a straggler's failure changes nothing", open(at(time.Minute), time.Minute, 3, 2), ticket{epoch: 2}, healthFailure, at(time.Second),
			open(at(time.Minute), time.Minute, 3, 2), noTransition, false},
		{"a straggler's success changes nothing", open(at(time.Minute), time.Minute, 3, 2), ticket{epoch: 2}, healthSuccess, at(time.Second),
			open(at(time.Minute), time.Minute, 3, 2), noTransition, false},
		{"a failed probe doubles the cool-down", func() endpointState { s := open(at(time.Minute), time.Minute, 3, 2); s.probing = true; return s }(),
			ticket{epoch: 3, probe: true}, healthFailure, at(2 * time.Minute),
			endpointState{open: true, failures: 3, failingSince: t0, openUntil: at(4 * time.Minute), cooldown: 2 * time.Minute, epoch: 9, changedAt: at(2 * time.Minute)},
			reopened, false},
		{"up to the maximum", open(at(time.Minute), 2*time.Minute, 3, 2), ticket{epoch: 3, probe: true}, healthFailure, at(2 * time.Minute),
			endpointState{open: true, failures: 3, failingSince: t0, openUntil: at(5 * time.Minute), cooldown: 3 * time.Minute, epoch: 9, changedAt: at(2 * time.Minute)},
			reopened, false},
		{"a good probe closes", func() endpointState { s := open(at(time.Minute), time.Minute, 3, 2); s.probing = true; return s }(),
			ticket{epoch: 3, probe: true}, healthSuccess, at(2 * time.Minute),
			endpointState{epoch: 9, changedAt: at(2 * time.Minute)}, closed, false},
		{"a 429 is not a failure, and frees the probe", func() endpointState { s := open(at(time.Minute), time.Minute, 3, 2); s.probing = true; return s }(),
			ticket{epoch: 3, probe: true}, healthRateLimited, at(2 * time.Minute),
			open(at(time.Minute), time.Minute, 3, 2), noTransition, false},
		{"a 410 is not a failure", endpointState{failures: 1, failingSince: t0}, ticket{}, healthGone, t0,
			endpointState{failures: 1, failingSince: t0}, noTransition, false},
		{"failing for disableAfter disables", endpointState{failures: 1, failingSince: t0}, ticket{}, healthFailure, at(time.Hour),
			endpointState{open: true, failures: 2, failingSince: t0, openUntil: at(time.Hour + time.Minute), cooldown: time.Minute, epoch: 9, changedAt: at(time.Hour)},
			opened, true},
	}
	for _, tc := range cases {
		got, tr, retire := p.step(tc.st, tc.tk, tc.ev, tc.now, 9)
		assert.Equal(t, tc.want, got, tc.name)
		assert.Equal(t, tc.tr, tr, tc.name)
		assert.Equal(t, tc.retire, retire, tc.name)
	}
	off := breakerPolicy{threshold: -1}
	got, tr, _ := off.step(endpointState{failures: 9}, ticket{}, healthFailure, t0, 1)
	assert.False(t, got.open, "no breaker: never opens")
	assert.Equal(t, noTransition, tr)
}

// Admission: what an attempt may do in each state, and one probe at a time.
func TestHealthTableAdmits(t *testing.T) {
	t.Parallel()
	h := newHealthTable(breakerPolicy{threshold: 1, cooldown: time.Minute, maxCooldown: time.Hour}, time.Minute)
	t0 := time.Now()
	tk, ok := h.admit("ep", t0)
	assert.True(t, ok, "no entry: admitted")
	ch := h.record("ep", tk, t0, healthFailure, time.Time{})
	assert.Equal(t, opened, ch.transition)
	_, ok = h.admit("ep", t0.Add(time.Second))
	assert.False(t, ok, "open")
	probe, ok := h.admit("ep", t0.Add(time.Minute))
	assert.True(t, ok, "half-open: the probe")
	assert.True(t, probe.probe)
	_, ok = h.admit("ep", t0.Add(time.Minute))
	assert.False(t, ok, "one probe at a time")
	assert.Equal(t, CircuitHalfOpen, h.get("ep", t0.Add(time.Minute)).Circuit, "derived from time, not stored by a read")
	ch = h.record("ep", probe, t0.Add(time.Minute), healthSuccess, time.Time{})
	assert.Equal(t, closed, ch.transition)
	_, ok = h.admit("ep", t0.Add(time.Minute))
	assert.True(t, ok)

	// A pause holds attempts, whatever the circuit.
	h.record("ep", ticket{}, t0, healthRateLimited, t0.Add(time.Hour))
	_, ok = h.admit("ep", t0.Add(time.Minute))
	assert.False(t, ok, "paused")

	// A reset ends it all; results of attempts admitted before it are stale.
	stale, _ := h.admit("other", t0)
	assert.False(t, h.reset("ep", t0))
	_, ok = h.admit("ep", t0)
	assert.True(t, ok, "reset")
	h.reset("other", t0)
	ch = h.record("other", stale, t0, healthFailure, time.Time{})
	assert.Equal(t, noTransition, ch.transition)
	assert.Zero(t, h.get("other", t0).ConsecutiveFailures, "a failure from before the reset does not count")
}
