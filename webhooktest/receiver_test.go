package webhooktest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

const envelope = `{"id":"msg_1","type":"order.created","timestamp":"2026-01-02T15:04:05Z","version":"1","data":{"n":1}}`

// newSecret returns a fresh whsec_ secret and its parsed form.
func newSecret(t *testing.T) (string, webhook.Secret) {
	t.Helper()
	raw := webhook.NewSecret()
	sec, err := webhook.ParseSecret(raw)
	require.NoError(t, err)
	return raw, sec
}

// signed returns a POST of body to url signed with the Standard Webhooks scheme.
func signed(t *testing.T, ctx context.Context, url string, sec webhook.Secret, id string, at time.Time, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	msg := webhook.Message{ID: id, Timestamp: at, Body: []byte(body)}
	require.NoError(t, webhook.StandardSigner{}.Sign(req.Header, msg, []webhook.Secret{sec}))
	return req
}

// do sends req with the receiver's client and returns the status and body.
func do(r *webhooktest.Receiver, req *http.Request) (int, string, error) {
	resp, err := r.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestReceiverVerifies(t *testing.T) {
	raw, sec := newSecret(t)
	_, otherSec := newSecret(t)
	tests := []struct {
		name     string
		req      func(t *testing.T, url string) *http.Request
		want     int
		verified bool
		wantErr  error
	}{
		{
			name: "correctly signed",
			req: func(t *testing.T, url string) *http.Request {
				return signed(t, t.Context(), url+"/hooks?x=1", sec, "msg_1", time.Now(), envelope)
			},
			want:     http.StatusNoContent,
			verified: true,
		},
		{
			name: "tampered body",
			req: func(t *testing.T, url string) *http.Request {
				req := signed(t, t.Context(), url, sec, "msg_1", time.Now(), envelope)
				tampered := strings.Replace(envelope, `"n":1`, `"n":2`, 1)
				req.Body = io.NopCloser(strings.NewReader(tampered))
				req.ContentLength = int64(len(tampered))
				return req
			},
			want:    http.StatusUnauthorized,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name: "tampered id",
			req: func(t *testing.T, url string) *http.Request {
				req := signed(t, t.Context(), url, sec, "msg_1", time.Now(), envelope)
				req.Header.Set(webhook.HeaderID, "msg_2")
				return req
			},
			want:    http.StatusUnauthorized,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name: "another secret",
			req: func(t *testing.T, url string) *http.Request {
				return signed(t, t.Context(), url, otherSec, "msg_1", time.Now(), envelope)
			},
			want:    http.StatusUnauthorized,
			wantErr: webhook.ErrNoMatchingSignature,
		},
		{
			name: "unsigned",
			req: func(t *testing.T, url string) *http.Request {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(envelope))
				require.NoError(t, err)
				return req
			},
			want:    http.StatusUnauthorized,
			wantErr: webhook.ErrMissingHeader,
		},
		{
			name: "replayed an hour later",
			req: func(t *testing.T, url string) *http.Request {
				return signed(t, t.Context(), url, sec, "msg_1", time.Now().Add(-time.Hour), envelope)
			},
			want:    http.StatusUnauthorized,
			wantErr: webhook.ErrTimestampTooOld,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := webhooktest.NewReceiver(t, raw)
			r.Script(webhooktest.Status(500)) // never reached by a rejected request
			if tt.verified {
				r.Script()
			}
			code, body, err := do(r, tt.req(t, r.URL))
			require.NoError(t, err)
			assert.Equal(t, tt.want, code)

			ds := r.Deliveries()
			require.Len(t, ds, 1)
			d := ds[0]
			assert.Equal(t, tt.verified, d.Verified)
			assert.Equal(t, tt.want, d.Status)
			assert.Equal(t, http.MethodPost, d.Method)
			assert.Equal(t, "order.created", d.Envelope.Type, "the envelope is parsed even when rejected")
			if tt.wantErr != nil {
				assert.ErrorIs(t, d.VerifyErr, tt.wantErr)
				assert.Contains(t, body, d.VerifyErr.Error(), "the 401 says why")
				assert.Empty(t, r.Verified())
			} else {
				assert.NoError(t, d.VerifyErr)
				assert.Equal(t, r.URL+"/hooks?x=1", d.URL)
				assert.Equal(t, envelope, string(d.Body))
				assert.Equal(t, "msg_1", d.Header.Get(webhook.HeaderID))
				assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
				assert.Equal(t, "msg_1", d.Envelope.ID)
				assert.JSONEq(t, `{"n":1}`, string(d.Envelope.Data))
				assert.Len(t, r.Verified(), 1)
			}
		})
	}
}

func TestReceiverAcceptsAnyOfItsSecrets(t *testing.T) {
	oldRaw, oldSec := newSecret(t)
	newRaw, newSec := newSecret(t)
	edSecret, edPublic := webhook.NewKeyPair()
	edSec, err := webhook.ParseSecret(edSecret)
	require.NoError(t, err)

	r := webhooktest.NewReceiver(t, newRaw, oldRaw, edPublic)
	for i, sec := range []webhook.Secret{oldSec, newSec, edSec} {
		code, _, err := do(r, signed(t, t.Context(), r.URL, sec, fmt.Sprintf("msg_%d", i), time.Now(), envelope))
		require.NoError(t, err)
		assert.Equal(t, http.StatusNoContent, code, "secret %d", i)
	}
	assert.Len(t, r.Verified(), 3)
}

func TestReceiverVerifierFollowsFakeClock(t *testing.T) {
	raw, sec := newSecret(t)
	clock := webhooktest.NewClock(time.Now().Add(-24 * time.Hour))
	r := webhooktest.NewReceiver(t, raw)
	require.NotNil(t, r.Verifier())
	r.Verifier().Now = clock.Now

	code, _, err := do(r, signed(t, t.Context(), r.URL, sec, "msg_1", clock.Now(), envelope))
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, code, "a timestamp from the fake clock is accepted")

	code, _, err = do(r, signed(t, t.Context(), r.URL, sec, "msg_2", time.Now(), envelope))
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, code, "the real time is a day ahead of the fake clock")
	assert.ErrorIs(t, r.Deliveries()[1].VerifyErr, webhook.ErrTimestampTooNew)
}

func TestReceiverScript(t *testing.T) {
	raw, sec := newSecret(t)
	tests := []struct {
		name   string
		script []webhooktest.Response
		want   []int
		bodies []string
	}{
		{"unscripted answers 204", nil, []int{204, 204}, nil},
		{
			"plays in order and repeats the last",
			[]webhooktest.Response{webhooktest.Status(500), webhooktest.Status(429), webhooktest.Status(200)},
			[]int{500, 429, 200, 200},
			nil,
		},
		{
			"zero Status means 200, body sent",
			[]webhooktest.Response{{Body: "thanks"}, webhooktest.Status(410).WithBody("gone")},
			[]int{200, 410},
			[]string{"thanks", "gone"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := webhooktest.NewReceiver(t, raw)
			r.Script(tt.script...)
			for i, want := range tt.want {
				code, body, err := do(r, signed(t, t.Context(), r.URL, sec, fmt.Sprintf("msg_%d", i), time.Now(), envelope))
				require.NoError(t, err)
				assert.Equal(t, want, code, "request %d", i)
				if tt.bodies != nil {
					assert.Equal(t, tt.bodies[i], body, "request %d", i)
				}
			}
			ds := r.Deliveries()
			require.Len(t, ds, len(tt.want))
			for i, d := range ds {
				assert.Equal(t, tt.want[i], d.Status, "delivery %d", i)
			}
		})
	}
}

func TestReceiverScriptHeadersAndRejectionsDoNotAdvance(t *testing.T) {
	raw, sec := newSecret(t)
	_, otherSec := newSecret(t)
	r := webhooktest.NewReceiver(t, raw)
	r.Script(webhooktest.Status(503).WithHeader("Retry-After", "7"), webhooktest.Status(200))

	code, _, err := do(r, signed(t, t.Context(), r.URL, otherSec, "msg_x", time.Now(), envelope))
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, code)

	resp, err := r.Client().Do(signed(t, t.Context(), r.URL, sec, "msg_1", time.Now(), envelope))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode, "the rejected request did not use the script")
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))

	code, _, err = do(r, signed(t, t.Context(), r.URL, sec, "msg_1", time.Now(), envelope))
	require.NoError(t, err)
	assert.Equal(t, 200, code)
}

func TestReceiverScriptPanicsOnInvalidResponse(t *testing.T) {
	raw, _ := newSecret(t)
	r := webhooktest.NewReceiver(t, raw)
	assert.Panics(t, func() { r.Script(webhooktest.Status(1000)) })
}

func TestReceiverHangup(t *testing.T) {
	raw, sec := newSecret(t)
	for _, resp := range []webhooktest.Response{webhooktest.Hangup(), webhooktest.Fail(io.ErrUnexpectedEOF)} {
		r := webhooktest.NewReceiver(t, raw)
		r.Script(resp, webhooktest.Status(200))

		_, _, err := do(r, signed(t, t.Context(), r.URL, sec, "msg_1", time.Now(), envelope))
		require.Error(t, err, "the client sees the connection closed without a response")

		code, _, err := do(r, signed(t, t.Context(), r.URL, sec, "msg_1", time.Now(), envelope))
		require.NoError(t, err)
		assert.Equal(t, 200, code)

		ds := r.Verified()
		require.Len(t, ds, 2)
		assert.Equal(t, 0, ds[0].Status, "a hangup answers nothing")
		assert.Equal(t, 200, ds[1].Status)
	}
}

func TestReceiverDelay(t *testing.T) {
	raw, sec := newSecret(t)

	t.Run("client giving up ends the delay", func(t *testing.T) {
		ctx := testContext(t)
		r := webhooktest.NewReceiver(t, raw)
		r.Script(webhooktest.Status(200).WithDelay(time.Hour))

		reqCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		req := signed(t, reqCtx, r.URL, sec, "msg_1", time.Now(), envelope)
		errc := make(chan error, 1)
		go func() {
			_, _, err := do(r, req)
			errc <- err
		}()
		require.NoError(t, r.Wait(ctx, 1), "the delivery is recorded while it is held")
		cancel()
		assert.ErrorIs(t, <-errc, context.Canceled)
		r.Close() // returns only once the handler has given up on the request
	})

	t.Run("Close ends the delay", func(t *testing.T) {
		ctx := testContext(t)
		r := webhooktest.NewReceiver(t, raw)
		r.Script(webhooktest.Status(200).WithDelay(time.Hour))
		req := signed(t, ctx, r.URL, sec, "msg_1", time.Now(), envelope)
		errc := make(chan error, 1)
		go func() {
			_, _, err := do(r, req)
			errc <- err
		}()
		require.NoError(t, r.Wait(ctx, 1))
		r.Close()
		assert.Error(t, <-errc, "the held request is hung up on")
		r.Close() // a second Close is harmless
	})

	t.Run("short delay answers", func(t *testing.T) {
		r := webhooktest.NewReceiver(t, raw)
		r.Script(webhooktest.Status(202).WithDelay(time.Millisecond))
		code, _, err := do(r, signed(t, t.Context(), r.URL, sec, "msg_1", time.Now(), envelope))
		require.NoError(t, err)
		assert.Equal(t, 202, code)
	})
}

// TestReceiverWait checks that Wait counts every request and WaitVerified only verified ones.
func TestReceiverWait(t *testing.T) {
	raw, sec := newSecret(t)
	_, otherSec := newSecret(t)
	ctx := testContext(t)
	r := webhooktest.NewReceiver(t, raw)
	var wg sync.WaitGroup
	for i, s := range []webhook.Secret{sec, otherSec, sec} {
		req := signed(t, ctx, r.URL, s, fmt.Sprintf("msg_%d", i), time.Now(), envelope)
		wg.Go(func() {
			_, _, err := do(r, req)
			assert.NoError(t, err)
		})
	}
	require.NoError(t, r.Wait(ctx, 3))
	require.NoError(t, r.WaitVerified(ctx, 2))
	wg.Wait()
	assert.Len(t, r.Deliveries(), 3)
	assert.Len(t, r.Verified(), 2)

	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, r.WaitVerified(short, 3), context.DeadlineExceeded)
	assert.NoError(t, r.Wait(expiredContext(t), 3), "already satisfied")
	assert.ErrorIs(t, r.Wait(expiredContext(t), 4), context.DeadlineExceeded)
}

func TestReceiverDuplicates(t *testing.T) {
	raw, sec := newSecret(t)
	_, otherSec := newSecret(t)
	r := webhooktest.NewReceiver(t, raw)
	r.Script(webhooktest.Status(500), webhooktest.Status(204))

	for _, send := range []struct {
		id  string
		sec webhook.Secret
	}{
		{"msg_a", sec},      // 500: the sender retries
		{"msg_a", sec},      // the retry: a duplicate
		{"msg_b", sec},      //
		{"msg_c", otherSec}, // rejected: not counted
	} {
		_, _, err := do(r, signed(t, t.Context(), r.URL, send.sec, send.id, time.Now(), envelope))
		require.NoError(t, err)
	}
	assert.Equal(t, 2, r.UniqueIDs())
	assert.Equal(t, 1, r.Duplicates())
}

func TestReceiverRejectsLargeBodies(t *testing.T) {
	raw, sec := newSecret(t)
	r := webhooktest.NewReceiver(t, raw)
	big := `{"pad":"` + strings.Repeat("x", webhook.DefaultMaxBodyBytes) + `"}`
	code, _, err := do(r, signed(t, t.Context(), r.URL, sec, "msg_1", time.Now(), big))
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	d := r.Deliveries()[0]
	assert.False(t, d.Verified)
	assert.ErrorIs(t, d.VerifyErr, webhook.ErrBodyTooLarge)
	assert.Len(t, d.Body, webhook.DefaultMaxBodyBytes)
}

func TestUnverifiedReceiver(t *testing.T) {
	_, sec := newSecret(t)
	r := webhooktest.NewUnverifiedReceiver(t)
	assert.Nil(t, r.Verifier())

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.URL, strings.NewReader(envelope))
	require.NoError(t, err)
	req.Header.Set(webhook.HeaderID, "msg_1")
	signer := webhook.HexSigner{Prefix: "sha256="}
	require.NoError(t, signer.Sign(req.Header, webhook.Message{ID: "msg_1", Body: []byte(envelope)}, []webhook.Secret{sec}))
	code, _, err := do(r, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, code)

	ds := r.Verified()
	require.Len(t, ds, 1)
	mac := hmac.New(sha256.New, sec.HMACKey())
	mac.Write(ds[0].Body)
	assert.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), ds[0].Header.Get(webhook.DefaultHexSignatureHeader))
	assert.Equal(t, 1, r.UniqueIDs())
}

func TestReceiverNonEnvelopeBody(t *testing.T) {
	r := webhooktest.NewUnverifiedReceiver(t)
	for _, body := range []string{"", "not json", "[1,2]"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.URL, strings.NewReader(body))
		require.NoError(t, err)
		_, _, err = do(r, req)
		require.NoError(t, err)
	}
	for _, d := range r.Deliveries() {
		assert.Zero(t, d.Envelope)
	}
	assert.Nil(t, r.Deliveries()[0].Body)
	assert.True(t, bytes.Equal([]byte("not json"), r.Deliveries()[1].Body))
}

// fatalRecorder is a testing.TB that records Fatal calls instead of stopping.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper()                           {}
func (f *fatalRecorder) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestNewReceiverInvalidSecrets(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
	}{
		{"none", nil},
		{"no prefix", []string{"hunter2-not-a-secret"}},
		{"too short", []string{webhook.SecretPrefix + "c2hvcnQ="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fatalRecorder{TB: t}
			r := webhooktest.NewReceiver(f, tt.secrets...)
			assert.Nil(t, r)
			assert.Contains(t, f.fatal, "webhooktest: NewReceiver")
			assert.Contains(t, f.fatal, webhook.ErrInvalidSecret.Error())
			assert.NotContains(t, f.fatal, "hunter2", "the message never contains the secret")
		})
	}
}
