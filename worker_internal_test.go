package webhook

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

type countingRoundTripper struct{ n atomic.Int32 }

func (c *countingRoundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Header: http.Header{}}, nil
}

// A claim works out which endpoints are paused before it takes deliveries, so one made
// as a Retry-After arrives can take a delivery for the endpoint just paused. The worker
// checks again and hands it back as it was (keeping its place in line), without a
// request.
func TestAWorkerHandsBackADeliveryPausedAfterItsClaim(t *testing.T) {
	t.Parallel()
	rt := &countingRoundTripper{}
	m := NewMemoryStore(0)
	s, err := NewSender(WithStore(m), WithTransport(rt), WithWorkers(1),
		WithEndpoints(Endpoint{ID: "ep", URL: "https://r.test/", Secret: NewSecret()}))
	require.NoError(t, err)

	now := time.Now()
	later := now.Add(time.Hour) // due later, so the Sender's own dispatcher leaves it
	d := Delivery{ID: newDeliveryID(now), EventID: "msg_1", EventType: "a.b", EndpointID: "ep", Version: "1",
		Body: []byte(`{}`), CreatedAt: now, QueuedAt: now, NextAttemptAt: later, UpdatedAt: now}
	require.NoError(t, m.Enqueue(t.Context(), []Delivery{d}))
	claimed, err := m.Claim(t.Context(), store.ClaimParams{Now: later, Limit: 1, Owner: s.id, LeaseUntil: later.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	pause := s.clock.Now().Add(time.Minute)
	s.health.record("ep", ticket{}, s.clock.Now(), healthRateLimited, pause) // a 429 with Retry-After: 60
	s.run(&attemptTimer{parent: t.Context()}, claimed[0])
	require.NoError(t, s.Close(context.Background())) // the recorder's writes are done

	assert.Zero(t, rt.n.Load(), "requests sent to the paused endpoint")
	got, err := m.Get(t.Context(), d.ID)
	require.NoError(t, err)
	assert.Equal(t, StatePending, got.State)
	assert.Zero(t, got.Attempts)
	assert.True(t, got.NextAttemptAt.Equal(later), "due as it was: %v, want %v", got.NextAttemptAt, later)
	assert.Empty(t, got.LeaseOwner)
}

// A worker's attempts share a context until one times out: the timeout cancels that
// attempt's context (with DeadlineExceeded as the cause) and the next attempt gets a new
// one; an attempt that ends in time leaves the context for the next; Close's abort (the
// parent) ends them all.
func TestAttemptTimer(t *testing.T) {
	t.Parallel()
	parent, abort := context.WithCancel(t.Context())
	defer abort()
	at := &attemptTimer{parent: parent}

	first := at.begin(time.Hour)
	at.end()
	second := at.begin(time.Hour)
	assert.Equal(t, first, second, "an attempt that ended in time leaves its context")
	assert.NoError(t, second.Err())
	at.end()

	slow := at.begin(10 * time.Millisecond)
	select {
	case <-slow.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the timeout never cancelled the attempt")
	}
	assert.ErrorIs(t, context.Cause(slow), context.DeadlineExceeded)
	at.end()
	next := at.begin(time.Hour)
	assert.NotEqual(t, slow, next, "a timed-out context is not used again")
	assert.NoError(t, next.Err())

	abort()
	assert.ErrorIs(t, next.Err(), context.Canceled, "Close's abort ends the attempt under way")
	at.end()
}
