package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer

	require.NoError(t, run(ctx, &out), "output:\n%s", out.String())
	got := out.String()
	t.Log("\n" + got)

	// The story: the flaky event fails once with 503, is retried and then delivered, with
	// the same webhook-id on both requests.
	outage := regexp.MustCompile(`receiver  order\.created +(msg_\w+) signature ok, simulating an outage -> 503`).FindStringSubmatch(got)
	require.NotNil(t, outage, "the receiver should fail the first order.created")
	assert.Contains(t, got, "sender    order.created   attempt 1: HTTP 503, will retry in 500ms")
	assert.Regexp(t, `receiver  order\.created +`+outage[1]+` signature ok, processed .*-> 204`, got,
		"the retry carries the same webhook-id")
	assert.Contains(t, got, "sender    order.created   attempt 2: HTTP 204, delivered")
	assert.Less(t, strings.Index(got, "attempt 1: HTTP 503"), strings.Index(got, "order.created   attempt 2: HTTP 204"))

	for _, typ := range []string{"user.registered", "order.shipped"} {
		assert.Regexp(t, `sender    `+regexp.QuoteMeta(typ)+` +attempt 1: HTTP 204, delivered`, got)
	}
	assert.Contains(t, got, "forger    request signed with the wrong secret: HTTP 401")
	assert.Contains(t, got, "summary   events sent: 3, processed: 3, duplicates ignored: 0, requests rejected: 1")
	assert.True(t, strings.HasSuffix(got, "OK        every event was delivered and verified\n"))
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	require.Error(t, err, "a cancelled run cannot deliver, and must say so")
	assert.ErrorIs(t, err, context.Canceled)
}
