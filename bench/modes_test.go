package main

import (
	"context"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
	"github.com/stretchr/testify/require"
)

// The ceiling-headers mode stands for the bytes of a Sender's request: it must carry the
// same headers as one, with values of the same length, and a signature that verifies.
// Should the Sender add or drop a header, this fails and the control is to be updated.
func TestCeilingHeadersMatchASendersRequest(t *testing.T) {
	secret := webhook.NewSecret()
	rcv := webhooktest.NewReceiver(t, secret)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	b := &bench{secret: secret, payload: jsonString(200)}
	s, err := webhook.NewSender(
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: rcv.URL + "/e/0", Secret: secret}),
		webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close(ctx)) }()
	_, err = s.Send(ctx, webhook.Event{ID: envelopeID, Type: "bench.e0", Data: b.payload})
	require.NoError(t, err)
	require.NoError(t, rcv.WaitVerified(ctx, 1))

	body := b.envelope()
	static, err := b.webhookHeaders(body)
	require.NoError(t, err)
	req, err := ceilingRequest(rcv.URL+"/e/0", body, envelopeID, static)
	require.NoError(t, err)
	tr := ceilingTransport(1, true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req.WithContext(ctx))
	require.NoError(t, err)
	drainClose(resp)
	require.NoError(t, rcv.Wait(ctx, 2))

	got := rcv.Deliveries()
	require.Len(t, got, 2)
	sender, ceiling := got[0], got[1]
	require.True(t, ceiling.Verified, "the precomputed signature does not verify: %v", ceiling.VerifyErr)
	require.Equal(t, slices.Sorted(maps.Keys(sender.Header)), slices.Sorted(maps.Keys(ceiling.Header)),
		"the two requests carry different headers")
	for k, v := range sender.Header {
		require.Len(t, ceiling.Header[k], len(v), k)
		for i := range v {
			require.Len(t, ceiling.Header[k][i], len(v[i]), "%s: %q against the Sender's %q", k, ceiling.Header[k][i], v[i])
		}
	}
	// The envelopes' timestamps may differ in their fraction's digits (up to nine of
	// them), nothing else.
	require.InDelta(t, len(sender.Body), len(ceiling.Body), 10, "the bodies differ in length")
}
