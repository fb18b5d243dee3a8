package pgstore_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/internal/pgtest"
	"github.com/hooksmith/webhook/webhooktest"
)

// TestTransactionalOutbox sends events with SendTx inside transactions that also write the
// caller's own rows: the committed event is delivered, woken by NOTIFY (the poll interval is
// an hour), and the rolled-back one leaves no trace.
func TestTransactionalOutbox(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	store := newStore(t, pool)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `CREATE TABLE orders (id text PRIMARY KEY)`)
	require.NoError(t, err)

	secret := webhook.NewSecret()
	rcv := webhooktest.NewReceiver(t, secret)
	sender, err := webhook.NewSender(webhook.WithStore(store), webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_orders", URL: rcv.URL, Secret: secret}),
		webhook.WithPollInterval(time.Hour))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sender.Close(context.Background())) })

	// The Sender listens from its start; wait until the LISTEN is in place, so only a
	// notification can explain a prompt delivery.
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'`).Scan(&n)
		return err == nil && n > 0
	}, 10*time.Second, 10*time.Millisecond)

	send := func(orderID, eventID string) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, `INSERT INTO orders (id) VALUES ($1)`, orderID)
		require.NoError(t, err)
		ids, err := sender.SendTx(ctx, tx, webhook.Event{ID: eventID, Type: "order.created", Data: map[string]string{"order": orderID}})
		require.NoError(t, err)
		require.Len(t, ids, 1)
		if orderID == "ord_2" {
			require.NoError(t, tx.Commit(ctx))
		}
	}
	send("ord_1", "evt_rolled_back")
	start := time.Now()
	send("ord_2", "evt_committed")

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, rcv.WaitVerified(wctx, 1))
	t.Logf("delivered %s after commit", time.Since(start))
	got := rcv.Verified()
	require.Len(t, got, 1)
	assert.Equal(t, "evt_committed", got[0].Envelope.ID)

	// The later, committed event is delivered; the rolled-back one was never stored.
	res, err := store.List(ctx, webhook.ListParams{EventID: "evt_rolled_back"})
	require.NoError(t, err)
	assert.Empty(t, res.Deliveries)
	res, err = store.List(ctx, webhook.ListParams{EventID: "evt_committed"})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, 1)
	var orders int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders))
	assert.Equal(t, 1, orders)
}
