package webhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestQueueFull(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(200).WithDelay(time.Hour))
	ctx := testCtx(t)

	t.Run("fail fast", func(t *testing.T) {
		store := webhook.NewMemoryStore(2)
		s := newSender(t, webhook.WithTransport(tr), webhook.WithStore(store), webhook.WithFailFast(true),
			webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())), webhook.WithTimeout(time.Second),
			webhook.WithLeaseDuration(time.Minute))
		for range 2 {
			_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
			require.NoError(t, err)
		}
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		assert.ErrorIs(t, err, webhook.ErrQueueFull)
		assert.Equal(t, 2, store.Len(), "the rejected event stored nothing")
	})

	t.Run("blocks until room", func(t *testing.T) {
		recvSecret := webhook.NewSecret()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		store := webhook.NewMemoryStore(1)
		s := newSender(t, webhook.WithStore(store), webhook.WithEndpoints(endpoint("ep", srv.URL, recvSecret)))
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		require.NoError(t, err)

		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = s.Send(short, webhook.Event{Type: "a.b"})
		cancel()
		assert.ErrorIs(t, err, webhook.ErrQueueFull)
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		done := make(chan error, 1)
		go func() {
			_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
			done <- err
		}()
		close(release) // the first delivery completes, making room
		require.NoError(t, <-done)
	})
}

// Many callers contend for a small queue, and some give up while they wait: every Send
// that returned IDs is delivered, and every caller returns, with no help from the room
// poll (the Sender's clock never moves, so it never fires). A wake-up for room lost
// while others wait, or a baton left with a caller that gave up, would hang a caller.
func TestSendsContendingForRoomAllGetInWithoutThePoll(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	var delivered atomic.Int64
	progress := make(chan struct{}, 1)
	s := newSender(t, webhook.WithStore(webhook.NewMemoryStore(4)), webhook.WithWorkers(4),
		webhook.WithClock(webhooktest.NewClock(time.Now())), webhook.WithPollInterval(time.Hour),
		webhook.WithTransport(webhooktest.NewTransport()),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(a webhook.AttemptReport) {
			if a.Final {
				delivered.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}}))
	const callers, each = 32, 40
	var accepted, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				sctx, cancel := context.WithCancel(ctx)
				if (c+i)%5 == 0 {
					// Given up on at some point while it runs, from another goroutine.
					go cancel()
				}
				_, err := s.Send(sctx, webhook.Event{Type: "a.b"})
				cancel()
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, context.Canceled):
					// Before it waited (the store checks the context), or while it
					// waited (wrapped in ErrQueueFull).
					gaveUp.Add(1)
				default:
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(callers*each), accepted.Load()+gaveUp.Load())
	assert.Greater(t, accepted.Load(), int64(callers*each/2))
	for delivered.Load() < accepted.Load() {
		select {
		case <-progress:
		case <-ctx.Done():
			t.Fatalf("%d of %d accepted deliveries were delivered", delivered.Load(), accepted.Load())
		}
	}
	assert.Equal(t, accepted.Load(), delivered.Load())
}

// roomElsewhere is a Sender, on a fake clock with a poll of a minute, whose memory store
// of capacity 2 another process holds whole: two deliveries due in an hour (so this
// Sender's dispatcher leaves them), which it has claimed, leased for longer than the
// test runs on the fake clock.
type roomElsewhere struct {
	t       *testing.T
	ctx     context.Context
	clk     *webhooktest.Clock
	store   *fullWatch
	s       *webhook.Sender
	due     time.Time
	claimed []webhook.Delivery
}

// fullWatch is a memory store that reports each Enqueue it refuses for want of room.
type fullWatch struct {
	*webhook.MemoryStore
	full chan struct{}
}

func (w *fullWatch) Enqueue(ctx context.Context, ds []webhook.Delivery) error {
	err := w.MemoryStore.Enqueue(ctx, ds)
	if errors.Is(err, webhook.ErrQueueFull) {
		w.full <- struct{}{}
	}
	return err
}

func newRoomElsewhere(t *testing.T, tr http.RoundTripper) *roomElsewhere {
	t.Helper()
	start := time.Now()
	r := &roomElsewhere{t: t, ctx: testCtx(t), clk: webhooktest.NewClock(start),
		store: &fullWatch{MemoryStore: webhook.NewMemoryStore(2), full: make(chan struct{}, 64)}, due: start.Add(time.Hour)}
	r.s = newSender(t, webhook.WithStore(r.store), webhook.WithClock(r.clk), webhook.WithTransport(tr),
		webhook.WithPollInterval(time.Minute), webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())))
	require.NoError(t, r.store.Enqueue(r.ctx, []webhook.Delivery{storetest.Delivery("dlv_elsewhere_0", "elsewhere", r.due),
		storetest.Delivery("dlv_elsewhere_1", "elsewhere", r.due)}))
	claimed, err := r.store.Claim(r.ctx, store.ClaimParams{Now: r.due, Limit: 2, Owner: "other", LeaseUntil: r.due.Add(1000 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	r.claimed = claimed
	return r
}

// waiting waits until the store has refused n Enqueues for want of room.
func (r *roomElsewhere) waiting(n int) {
	r.t.Helper()
	for range n {
		select {
		case <-r.store.full:
		case <-r.ctx.Done():
			r.t.Fatalf("no Send found the store full")
		}
	}
}

// send Sends in a goroutine of its own and returns where its error will come.
func (r *roomElsewhere) send(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { _, err := r.s.Send(ctx, webhook.Event{Type: "a.b"}); done <- err }()
	return done
}

// finishElsewhere has the other process finish its i'th delivery, making room.
func (r *roomElsewhere) finishElsewhere(i int) {
	r.t.Helper()
	require.NoError(r.t, r.store.Record(r.ctx, store.RecordParams{DeliveryID: r.claimed[i].ID, Owner: "other", Now: r.due,
		Attempt: &webhook.Attempt{StartedAt: r.due, StatusCode: 204}, State: webhook.StateSucceeded}))
}

// admitted waits for the Send whose error comes on done to get in.
func (r *roomElsewhere) admitted(done <-chan error, what string) {
	r.t.Helper()
	select {
	case err := <-done:
		require.NoError(r.t, err)
	case <-r.ctx.Done():
		r.t.Fatalf("%s was never let in", what)
	}
}

// Room made by another process sharing the store reaches a Send waiting for it at its
// poll, whatever the other waiters do.
func TestSendsWaitingForRoomMadeElsewhereGetInAtThePoll(t *testing.T) {
	t.Parallel()
	r := newRoomElsewhere(t, webhooktest.NewTransport())
	ctxA, cancelA := context.WithCancel(r.ctx)
	a := r.send(ctxA)
	b := r.send(r.ctx)
	r.waiting(2)

	// One waiter gives up; the other still polls.
	cancelA()
	errA := <-a
	assert.ErrorIs(t, errA, webhook.ErrQueueFull)
	assert.ErrorIs(t, errA, context.Canceled)

	// The other process finishes one; the poll finds the room.
	r.finishElsewhere(0)
	r.clk.Advance(time.Minute)
	r.admitted(b, "the Send waiting for room")
}
