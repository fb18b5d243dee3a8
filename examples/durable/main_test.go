package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// run starts this binary again as the child: here that is the test binary, so the
	// child role is picked before the tests run, as main does.
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer

	start := time.Now()
	require.NoError(t, run(ctx, &out), "output:\n%s", out.String())
	got := out.String()
	t.Logf("took %s\n%s", time.Since(start).Round(100*time.Millisecond), got)

	// The first child accepted every event and was killed with some answered, some in
	// flight and the rest never attempted. The usual counts are 4, 2 and 6; a loaded
	// machine can make an attempt time out before the kill and shift them.
	assert.Contains(t, got, "child 1   accepted 12 events")
	kill := regexp.MustCompile(`parent    SIGKILL child 1 with (\d+) delivered, (\d+) in flight, (\d+) never attempted: signal: killed`).FindStringSubmatch(got)
	require.NotNil(t, kill, "child 1 should be killed")
	delivered, inFlight, never := atoi(t, kill[1]), atoi(t, kill[2]), atoi(t, kill[3])
	assert.Equal(t, answeredAtOnce, delivered)
	assert.GreaterOrEqual(t, inFlight, 1)
	assert.Equal(t, events, delivered+inFlight+never)

	// The second child found the rest in the file and delivered it, the in-flight ones
	// again: the receiver saw those twice.
	found := regexp.MustCompile(`child 2   found (\d+) unfinished deliveries`).FindStringSubmatch(got)
	require.NotNil(t, found)
	assert.GreaterOrEqual(t, atoi(t, found[1]), events-delivered, "everything not recorded as delivered is in the file")
	assert.Regexp(t, `child 2   finished `+found[1]+` deliveries, \S+ after the kill, and exited`, got)
	for _, id := range regexp.MustCompile(`(msg_\w+) processed, answer delayed`).FindAllStringSubmatch(got, -1) {
		assert.Contains(t, got, id[1]+" duplicate, ignored -> 204", "a request in flight at the kill is sent again")
	}
	assert.Less(t, strings.Index(got, "SIGKILL"), strings.LastIndex(got, "duplicate, ignored"))
	summary := regexp.MustCompile(`summary   accepted by child 1: 12, delivered before the kill: 4, after the restart: 8, duplicates: (\d+), missing: 0\n`).FindStringSubmatch(got)
	require.NotNil(t, summary)
	assert.GreaterOrEqual(t, atoi(t, summary[1]), inFlight)
	assert.True(t, strings.HasSuffix(got, "OK        every accepted event was delivered, though the sender was killed\n"))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	require.Error(t, err, "a cancelled run cannot deliver, and must say so")
	assert.ErrorIs(t, err, context.Canceled)
}
