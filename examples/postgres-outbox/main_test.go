package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hooksmith/webhook/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m) // stops the cluster first: its watcher goroutine is not a leak
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestRun(t *testing.T) {
	url := pgtest.URL(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer

	require.NoError(t, run(ctx, &out, url), "output:\n%s", out.String())
	got := out.String()
	t.Log("\n" + got)

	// The rolled-back order: SendTx gave a delivery ID that the rollback erased.
	rolledBack := regexp.MustCompile(`service   order (ord_\w+): inserted, SendTx -> \[(dlv_\w+)\], then payment declined: ROLLBACK`).FindStringSubmatch(got)
	require.NotNil(t, rolledBack, "the first order should be rolled back")
	assert.Contains(t, got, "service   delivery "+rolledBack[2]+" does not exist (webhook.ErrNotFound)")

	// The committed order: delivered, verified by the receiver, recorded as succeeded.
	committed := regexp.MustCompile(`service   order (ord_\w+): inserted, SendTx -> \[(dlv_\w+)\], COMMIT`).FindStringSubmatch(got)
	require.NotNil(t, committed, "the second order should commit")
	assert.Regexp(t, `receiver  order\.created msg_\w+ signature ok, order `+committed[1]+` \(cus_ada, 4200 cents\) -> 204`, got)
	assert.Regexp(t, `sender    delivery `+committed[2]+`: HTTP 204, delivered \S+ after the commit`, got)
	assert.NotContains(t, got, "order "+rolledBack[1]+" (", "the receiver must never hear of the rolled-back order")
	assert.Contains(t, got, "summary   orders stored: 1 of 2, committed order's delivery: succeeded after 1 attempt(s), "+
		"received: committed true, rolled back false, requests rejected: 0")
	assert.True(t, strings.HasSuffix(got, "the rolled-back one never existed\n"))

	// The database agrees: one order, one delivery, both the committed order's.
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var orders []string
	rows, err := conn.Query(ctx, `SELECT id FROM `+outboxSchema+`.orders`)
	require.NoError(t, err)
	orders, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{committed[1]}, orders)
	var deliveries []string
	rows, err = conn.Query(ctx, `SELECT id FROM `+outboxSchema+`.hooksmith_deliveries`)
	require.NoError(t, err)
	deliveries, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{committed[2]}, deliveries)
}

// TestRunTwice runs the program again on the same database, as a user would: migrations,
// the orders table and order IDs must not clash with the first run's.
func TestRunTwice(t *testing.T) {
	url := pgtest.URL(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for i := range 2 {
		var out bytes.Buffer
		require.NoError(t, run(ctx, &out, url), "run %d, output:\n%s", i+1, out.String())
	}
}

func TestRunBadDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	// Port 1 on loopback: nothing listens there, so the connection is refused at once.
	err := run(ctx, &out, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=5")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webhook tables", "the error should say which step failed")
}
