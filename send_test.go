package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestSendDeliversSignedVerifiableRequests(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL+"/hook", secret)), rep.hooks(),
		webhook.WithWorkers(4))

	ctx := testCtx(t)
	const n = 50
	eventIDs := map[string]bool{}
	for i := range n {
		ids, err := s.Send(ctx, webhook.Event{Type: "user.registered", Data: map[string]int{"n": i}})
		require.NoError(t, err)
		require.Len(t, ids, 1)
		d, err := s.Delivery(ctx, ids[0])
		require.NoError(t, err)
		eventIDs[d.EventID] = true
	}
	require.NoError(t, recv.WaitVerified(ctx, n))
	rep.waitFinal(t, n)
	assert.Len(t, eventIDs, n, "a distinct generated event ID per event")
	for id := range eventIDs {
		assert.Regexp(t, `^msg_[0-7][0-9A-HJKMNP-TV-Z]{25}$`, id)
	}

	got := recv.Verified()
	require.Len(t, got, n)
	seen := map[int]bool{}
	for _, d := range got {
		assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
		assert.Equal(t, webhook.DefaultUserAgent, d.Header.Get("User-Agent"))
		assert.Equal(t, webhook.DefaultVersion, d.Header.Get("webhook-version"))
		assert.Equal(t, "user.registered", d.Envelope.Type)
		assert.Equal(t, webhook.DefaultVersion, d.Envelope.Version)
		assert.Equal(t, d.Header.Get("webhook-id"), d.Envelope.ID, "webhook-id is the envelope id")
		assert.True(t, eventIDs[d.Envelope.ID], "unknown event id %s", d.Envelope.ID)
		var data struct{ N int }
		require.NoError(t, json.Unmarshal(d.Envelope.Data, &data))
		seen[data.N] = true
	}
	assert.Len(t, seen, n, "every event delivered")
	assert.Zero(t, recv.Duplicates())

	res, err := s.Deliveries(ctx, webhook.ListParams{State: webhook.StateSucceeded, Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, n)
}

func TestWrongSecretIsRejectedByReceiver(t *testing.T) {
	t.Parallel()
	recv := webhooktest.NewReceiver(t, webhook.NewSecret())
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL, webhook.NewSecret())), rep.hooks(),
		webhook.WithRetryPolicy(webhook.RetryPolicy{MaxAttempts: 1}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, http.StatusUnauthorized, a.Attempt.StatusCode)
	assert.Equal(t, webhook.StateFailed, a.Delivery.State, "401 is permanent")
	require.Len(t, recv.Deliveries(), 1)
	assert.ErrorIs(t, recv.Deliveries()[0].VerifyErr, webhook.ErrNoMatchingSignature)
}

func TestFanOutByEventTypeAndVersion(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	rep := newReports()
	sec := webhook.NewSecret()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithVersion("2"),
		webhook.WithEndpoints(
			webhook.Endpoint{ID: "all", URL: "https://all.test/", Secret: sec},
			webhook.Endpoint{ID: "users", URL: "https://users.test/", Secret: sec, EventTypes: []string{"user.*"}},
			webhook.Endpoint{ID: "exact", URL: "https://exact.test/", Secret: sec, EventTypes: []string{"order.created"}},
			webhook.Endpoint{ID: "v1", URL: "https://v1.test/", Secret: sec, Version: "1"},
		))
	ctx := testCtx(t)
	cases := []struct {
		ev   webhook.Event
		want []string
	}{
		{webhook.Event{Type: "user.created"}, []string{"all", "users"}},
		{webhook.Event{Type: "user.profile.updated"}, []string{"all", "users"}},
		{webhook.Event{Type: "order.created"}, []string{"all", "exact"}},
		{webhook.Event{Type: "order.deleted"}, []string{"all"}},
		{webhook.Event{Type: "order.created", Version: "1"}, []string{"v1"}},
		{webhook.Event{Type: "order.created", Version: "3"}, nil},
	}
	for _, tc := range cases {
		ids, err := s.Send(ctx, tc.ev)
		require.NoError(t, err)
		var got []string
		for _, id := range ids {
			d, err := s.Delivery(ctx, id)
			require.NoError(t, err)
			got = append(got, d.EndpointID)
		}
		assert.Equal(t, tc.want, got, "%s v%s", tc.ev.Type, tc.ev.Version)
	}
	rep.waitFinal(t, 7)
	for _, r := range tr.RequestsTo("https://v1.test/") {
		assert.Equal(t, "1", r.Header.Get("webhook-version"))
	}
}

func TestSendToTargetsNamedEndpoints(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	rep := newReports()
	sec := webhook.NewSecret()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithEndpoints(
		webhook.Endpoint{ID: "a", URL: "https://a.test/", Secret: sec, EventTypes: []string{"only.this"}},
		webhook.Endpoint{ID: "b", URL: "https://b.test/", Secret: sec, Disabled: true},
	))
	ctx := testCtx(t)
	ids, err := s.SendTo(ctx, webhook.Event{Type: "other.type"}, "a")
	require.NoError(t, err)
	require.Len(t, ids, 1)
	rep.waitFinal(t, 1)
	assert.Len(t, tr.RequestsTo("https://a.test/"), 1)

	_, err = s.SendTo(ctx, webhook.Event{Type: "x.y"}, "missing")
	assert.ErrorIs(t, err, webhook.ErrEndpointNotFound)
	_, err = s.SendTo(ctx, webhook.Event{Type: "x.y"}, "b")
	assert.ErrorIs(t, err, webhook.ErrEndpointDisabled)
	_, err = s.SendTo(ctx, webhook.Event{Type: "x.y"})
	assert.ErrorIs(t, err, webhook.ErrEndpointNotFound)
}

func TestHexSignerEndToEnd(t *testing.T) {
	t.Parallel()
	recv := webhooktest.NewUnverifiedReceiver(t)
	secret := webhook.NewSecret()
	rep := newReports()
	s := newSender(t, rep.hooks(), webhook.WithEndpoints(webhook.Endpoint{ID: "gh", URL: recv.URL, Secret: secret,
		Signer: webhook.HexSigner{Header: "X-Hub-Signature-256", Prefix: "sha256="}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "push.created"})
	require.NoError(t, err)
	rep.waitFinal(t, 1)
	got := recv.Deliveries()
	require.Len(t, got, 1)
	sig := got[0].Header.Get("X-Hub-Signature-256")
	require.True(t, strings.HasPrefix(sig, "sha256="))
	assert.Equal(t, hexHMAC(t, secret, got[0].Body), strings.TrimPrefix(sig, "sha256="))
	assert.Empty(t, got[0].Header.Get("webhook-signature"))
	assert.NotEmpty(t, got[0].Header.Get("webhook-id"), "the idempotency key is sent whatever the scheme")
}

func TestCustomHeadersAndVersionHeader(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithVersionHeader("X-Api-Version"),
		webhook.WithUserAgent("acme-hooks/2"),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: "https://r.test/", Secret: webhook.NewSecret(),
			Headers: map[string]string{"X-Tenant": "t1", "Authorization": "Bearer abc"}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b", Version: "1"})
	require.NoError(t, err)
	rep.waitFinal(t, 1)
	r := tr.Requests()[0]
	assert.Equal(t, "t1", r.Header.Get("X-Tenant"))
	assert.Equal(t, "Bearer abc", r.Header.Get("Authorization"))
	assert.Equal(t, "1", r.Header.Get("X-Api-Version"))
	assert.Equal(t, "acme-hooks/2", r.Header.Get("User-Agent"))
	assert.Equal(t, http.MethodPost, r.Method)
}

func TestSecretsNeverReachLogsErrorsOrAttempts(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	core, logs := observer.New(zap.DebugLevel)
	tr := webhooktest.NewTransport()
	const rawURL = "https://user:p4ssw0rd@r.test/hook?token=s3cr3tq"
	tr.Script("https://r.test/hook", webhooktest.Fail(errors.New("boom")), webhooktest.Status(500),
		webhooktest.Status(410))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithLogger(zap.New(core)), rep.hooks(),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: rawURL, Secret: secret}),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	var texts []string
	for _, r := range rep.waitFinal(t, 1) {
		texts = append(texts, r.Attempt.Error, r.Delivery.LastError)
	}
	require.Equal(t, 3, tr.Len())
	sig := tr.Requests()[0].Header.Get("webhook-signature")
	require.NotEmpty(t, sig)
	for _, e := range logs.All() {
		texts = append(texts, e.Message)
		for k, v := range e.ContextMap() {
			texts = append(texts, k, fmt.Sprint(v))
		}
	}
	// Errors from bad input must not leak either.
	err = s.AddEndpoint(webhook.Endpoint{ID: "x", URL: rawURL, Secret: secret[:20]})
	require.Error(t, err)
	texts = append(texts, err.Error())
	require.NotEmpty(t, logs.All(), "the logger saw the attempts")
	for _, text := range texts {
		for _, leak := range []string{secret, secret[len("whsec_"):], "p4ssw0rd", "s3cr3tq", sig[3:]} {
			assert.NotContains(t, text, leak)
		}
	}
}

func TestURLCredentialsBecomeBasicAuth(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://alice:s3cret@r.test/hook", webhook.NewSecret())))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	rep.waitFinal(t, 1)
	req, err := http.NewRequest(http.MethodPost, "https://r.test/", nil)
	require.NoError(t, err)
	req.Header = tr.Requests()[0].Header
	user, pass, ok := req.BasicAuth()
	require.True(t, ok)
	assert.Equal(t, "alice", user)
	assert.Equal(t, "s3cret", pass)
}

// wrappedStore hides the memory store's type, so the Sender records through its
// asynchronous recorders as it does for durable stores.
type wrappedStore struct{ webhook.Store }

func TestAsynchronousRecordingDeliversAndRecordsEverything(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	recv.Script(webhooktest.Status(503), webhooktest.Status(204))
	store := webhook.NewMemoryStore(0)
	rep := newReports()
	s := newSender(t, webhook.WithStore(wrappedStore{store}), rep.hooks(), webhook.WithWorkers(4),
		webhook.WithEndpoints(endpoint("ep", recv.URL, secret)),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}}))
	ctx := testCtx(t)
	const n = 40
	for range n {
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		require.NoError(t, err)
	}
	rep.waitFinal(t, n)
	require.NoError(t, s.Close(ctx))
	res, err := store.List(ctx, webhook.ListParams{State: webhook.StateSucceeded, Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, n)
	assert.Zero(t, store.Len(), "nothing left in flight")
	assert.Equal(t, n, recv.UniqueIDs())
}

// writeCounter counts Write calls on the connections a transport dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func TestRequestHeadersAndBodyGoOutInOneWrite(t *testing.T) {
	t.Parallel()
	// net/http flushes the headers in a write of their own unless it knows the body is
	// in memory: a second syscall on every attempt, and a second segment for the
	// receiver. The Sender's request body must be a kind it recognises.
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	var writes atomic.Int64
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, writes: &writes}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL, secret)), webhook.WithTransport(tr),
		webhook.WithWorkers(1), rep.hooks())
	ctx := testCtx(t)
	const n = 5
	for i := range n {
		_, err := s.Send(ctx, webhook.Event{Type: "user.registered", Data: map[string]int{"n": i}})
		require.NoError(t, err)
	}
	for _, r := range rep.waitFinal(t, n) {
		require.Equal(t, webhook.Delivered, r.Verdict)
	}
	require.NoError(t, recv.WaitVerified(ctx, n))
	assert.Equal(t, int64(n), writes.Load(), "one write per request, headers and body together")
}
