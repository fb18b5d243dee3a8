package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
)

// hexHMAC computes the HexSigner value independently of the library.
func hexHMAC(t *testing.T, secret string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// nullLogger silences an httptest server's own error log (TLS handshake noise).
func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// testCtx is a context for waits in tests: generous, so a slow machine does not fail a
// correct test, but bounded, so a broken one ends.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newSender starts a Sender closed at the end of the test. The destination guard allows
// loopback, where the tests' receivers listen; guard tests use startSender.
func newSender(t *testing.T, opts ...webhook.Option) *webhook.Sender {
	t.Helper()
	return startSender(t, append([]webhook.Option{loopback}, opts...)...)
}

func startSender(t *testing.T, opts ...webhook.Option) *webhook.Sender {
	t.Helper()
	s, err := webhook.NewSender(opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// reports collects AttemptReports through the OnAttempt hook.
type reports struct {
	ch chan webhook.AttemptReport
}

func newReports() *reports { return &reports{ch: make(chan webhook.AttemptReport, 1024)} }

func (r *reports) hooks() webhook.Option {
	return webhook.WithHooks(webhook.Hooks{OnAttempt: func(a webhook.AttemptReport) { r.ch <- a }})
}

func (r *reports) next(t *testing.T) webhook.AttemptReport {
	t.Helper()
	select {
	case a := <-r.ch:
		return a
	case <-testCtx(t).Done():
		t.Fatal("timed out waiting for an attempt")
		return webhook.AttemptReport{}
	}
}

// waitFinal waits until n deliveries reached a final state and returns their reports.
func (r *reports) waitFinal(t *testing.T, n int) []webhook.AttemptReport {
	t.Helper()
	var out []webhook.AttemptReport
	for len(out) < n {
		if a := r.next(t); a.Final {
			out = append(out, a)
		}
	}
	return out
}

func endpoint(id, url, secret string) webhook.Endpoint {
	return webhook.Endpoint{ID: id, URL: url, Secret: secret}
}

// receiveN waits for n values on ch, failing with msg if ctx ends first.
func receiveN[T any](t *testing.T, ctx context.Context, ch <-chan T, n int, msg string) {
	t.Helper()
	for range n {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal(msg)
		}
	}
}

// claimWatch is a memory store that reports the IDs of the deliveries it hands out.
type claimWatch struct {
	*webhook.MemoryStore
	claimed chan string
}

func (c *claimWatch) Claim(ctx context.Context, p store.ClaimParams) ([]webhook.Delivery, error) {
	ds, err := c.MemoryStore.Claim(ctx, p)
	for _, d := range ds {
		c.claimed <- d.ID
	}
	return ds, err
}

// waitClaimed waits until the store has handed out the delivery id.
func (c *claimWatch) waitClaimed(t *testing.T, id string) {
	t.Helper()
	for {
		select {
		case got := <-c.claimed:
			if got == id {
				return
			}
		case <-testCtx(t).Done():
			t.Fatalf("delivery %s was never claimed", id)
		}
	}
}

// hangingServer answers 204, except that its first hang requests (every request, if hang
// is negative) wait until release is closed or the client gives up. started receives once
// per waiting request, after its body was read (a server notices a hang-up only then).
type hangingServer struct {
	*httptest.Server
	started  chan struct{}
	release  chan struct{}
	requests atomic.Int32
}

func newHangingServer(t *testing.T, hang int) *hangingServer {
	h := &hangingServer{started: make(chan struct{}, 64), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n := h.requests.Add(1); hang < 0 || int(n) <= hang {
			h.started <- struct{}{}
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close) // after the Sender's Close, which aborts the hanging attempts
	return h
}

func signedHeader(id, ts, sig string) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, ts)
	h.Set(webhook.HeaderSignature, sig)
	return h
}

// verifierAt returns a Verifier for secrets whose clock reads now.
func verifierAt(t testing.TB, now time.Time, secrets ...string) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(secrets...)
	require.NoError(t, err)
	v.Now = func() time.Time { return now }
	return v
}

// standardSign signs body with StandardSigner and returns the headers.
func standardSign(t testing.TB, id string, ts time.Time, body []byte, secrets ...string) http.Header {
	t.Helper()
	parsed := make([]webhook.Secret, len(secrets))
	for i, s := range secrets {
		parsed[i] = mustParseSecret(t, s)
	}
	h := http.Header{}
	require.NoError(t, webhook.StandardSigner{}.Sign(h, webhook.Message{ID: id, Timestamp: ts, Body: body}, parsed))
	return h
}
