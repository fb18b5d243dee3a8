package filestore_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
	"github.com/hooksmith/webhook/webhooktest"
)

// TestSenderDelivers runs Senders over the file store end to end: events sent by 16
// goroutines reach a verifying receiver, every delivery ends succeeded with its attempt
// recorded, and all of it is still in the file when a second Sender opens it.
func TestSenderDelivers(t *testing.T) {
	ctx := testContext(t)
	secret := webhook.NewSecret()
	rcv := webhooktest.NewReceiver(t, secret)
	path := filepath.Join(t.TempDir(), "hooks.db")
	const perRun = 200

	run := func(first int) {
		fs, err := filestore.Open(path)
		require.NoError(t, err)
		defer func() { require.NoError(t, fs.Close()) }()
		s, err := webhook.NewSender(webhook.WithStore(fs), webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
			webhook.WithEndpoints(webhook.Endpoint{ID: "ep_1", URL: rcv.URL + "/hook", Secret: secret}))
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Close(ctx)) }()

		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := first + g; i < first+perRun; i += 16 {
					_, err := s.Send(ctx, webhook.Event{ID: fmt.Sprintf("msg_%04d", i), Type: "invoice.paid", Data: map[string]int{"n": i}})
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		require.NoError(t, rcv.WaitVerified(ctx, first+perRun))
	}
	run(0)
	run(perRun)

	assert.Equal(t, 2*perRun, rcv.UniqueIDs())
	assert.Zero(t, rcv.Duplicates())
	fs, err := filestore.Open(path)
	require.NoError(t, err)
	defer fs.Close()
	n, err := fs.Len()
	require.NoError(t, err)
	assert.Zero(t, n, "unfinished deliveries")
	res, err := fs.List(ctx, webhook.ListParams{State: webhook.StateSucceeded, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, res.Deliveries, 2*perRun)
	for _, d := range res.Deliveries[:5] {
		as, err := fs.Attempts(ctx, d.ID)
		require.NoError(t, err)
		require.Len(t, as, 1)
		assert.Equal(t, 204, as[0].StatusCode)
		assert.False(t, as[0].StartedAt.After(time.Now()))
	}
}
