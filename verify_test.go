package webhook_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

func TestVerifyMissingHeader(t *testing.T) {
	t.Parallel()
	secret := whsec(testKey(32))
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"n":1}`)
	for _, name := range []string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature} {
		for _, how := range []string{"absent", "empty"} {
			t.Run(name+"/"+how, func(t *testing.T) {
				h := standardSign(t, "msg_1", now, body, secret)
				if how == "absent" {
					h.Del(name)
				} else {
					h.Set(name, "")
				}
				err := verifierAt(t, now, secret).Verify(h, body)
				assert.ErrorIs(t, err, webhook.ErrMissingHeader)
				assert.ErrorContains(t, err, name, "the error names the missing header")
			})
		}
	}
}

func TestVerifyInvalidTimestamp(t *testing.T) {
	t.Parallel()
	secret := whsec(testKey(32))
	now := time.Unix(1_700_000_000, 0)
	for _, ts := range []string{"abc", "1700000000.5", "1.7e9", "0x6553F100", "1700000000abc", " 1700000000", "99999999999999999999"} {
		t.Run(ts, func(t *testing.T) {
			h := standardSign(t, "msg_1", now, []byte("{}"), secret)
			h.Set(webhook.HeaderTimestamp, ts)
			err := verifierAt(t, now, secret).Verify(h, []byte("{}"))
			assert.ErrorIs(t, err, webhook.ErrInvalidHeader)
			assert.ErrorContains(t, err, webhook.HeaderTimestamp)
		})
	}
}

func TestVerifyTimestampTolerance(t *testing.T) {
	t.Parallel()
	secret := whsec(testKey(32))
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		tolerance time.Duration
		offset    time.Duration // message time relative to the receiver's clock
		want      error
	}{
		{name: "default, now", offset: 0},
		{name: "default, at the old edge", offset: -webhook.DefaultTolerance},
		{name: "default, at the new edge", offset: webhook.DefaultTolerance},
		{name: "default, too old", offset: -webhook.DefaultTolerance - time.Second, want: webhook.ErrTimestampTooOld},
		{name: "default, too new", offset: webhook.DefaultTolerance + time.Second, want: webhook.ErrTimestampTooNew},
		{name: "custom, within", tolerance: 10 * time.Second, offset: -10 * time.Second},
		{name: "custom, too old", tolerance: 10 * time.Second, offset: -11 * time.Second, want: webhook.ErrTimestampTooOld},
		{name: "custom, too new", tolerance: 10 * time.Second, offset: 11 * time.Second, want: webhook.ErrTimestampTooNew},
		{name: "custom wider than default", tolerance: time.Hour, offset: -30 * time.Minute},
		{name: "custom wider, too old", tolerance: time.Hour, offset: -time.Hour - time.Second, want: webhook.ErrTimestampTooOld},
		{name: "disabled", tolerance: -1, offset: -365 * 24 * time.Hour},
		{name: "disabled, future", tolerance: -1, offset: 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(`{"n":1}`)
			h := standardSign(t, "msg_1", now.Add(tt.offset), body, secret)
			v := verifierAt(t, now, secret)
			v.Tolerance = tt.tolerance
			err := v.Verify(h, body)
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.want)
			assert.NotErrorIs(t, err, webhook.ErrNoMatchingSignature)
		})
	}
}

func TestVerifyRotation(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret, otherSecret := whsec(testKey(32)), whsec(testKey(40)), whsec(testKey(24))
	edSecret, edPublic := webhook.NewKeyPair()
	_, otherPublic := webhook.NewKeyPair()
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"rotating":true}`)

	t.Run("signer emits one entry per secret, each verifiable alone", func(t *testing.T) {
		secrets := []string{newSecret, oldSecret, edSecret}
		verifyWith := []string{newSecret, oldSecret, edPublic}
		h := standardSign(t, "msg_rot", now, body, secrets...)
		entries := strings.Split(h.Get(webhook.HeaderSignature), " ")
		require.Len(t, entries, len(secrets))
		for i, entry := range entries {
			scheme := "v1,"
			if i == 2 {
				scheme = "v1a,"
			}
			assert.True(t, strings.HasPrefix(entry, scheme), "entry %d: %q", i, entry)
			alone := h.Clone()
			alone.Set(webhook.HeaderSignature, entry)
			for j, key := range verifyWith {
				err := verifierAt(t, now, key).Verify(alone, body)
				if i == j {
					assert.NoError(t, err, "entry %d with its own key", i)
				} else {
					assert.ErrorIs(t, err, webhook.ErrNoMatchingSignature, "entry %d with key %d", i, j)
				}
			}
		}
	})

	tests := []struct {
		name     string
		signWith []string
		verifier []string
		want     error
	}{
		{name: "both signatures, receiver knows old", signWith: []string{newSecret, oldSecret}, verifier: []string{oldSecret}},
		{name: "both signatures, receiver knows new", signWith: []string{newSecret, oldSecret}, verifier: []string{newSecret}},
		{name: "both signatures, receiver knows neither", signWith: []string{newSecret, oldSecret}, verifier: []string{otherSecret}, want: webhook.ErrNoMatchingSignature},
		{name: "one signature, receiver knows several", signWith: []string{newSecret}, verifier: []string{otherSecret, oldSecret, newSecret}},
		{name: "ed25519, receiver knows hmac and public key", signWith: []string{edSecret}, verifier: []string{oldSecret, edPublic}},
		{name: "ed25519, receiver knows other public keys", signWith: []string{edSecret}, verifier: []string{otherPublic, oldSecret}, want: webhook.ErrNoMatchingSignature},
		{name: "hmac, receiver knows only public keys", signWith: []string{oldSecret}, verifier: []string{edPublic}, want: webhook.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := standardSign(t, "msg_rot", now, body, tt.signWith...)
			err := verifierAt(t, now, tt.verifier...).Verify(h, body)
			if tt.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}

	t.Run("unknown and malformed entries are skipped", func(t *testing.T) {
		h := standardSign(t, "msg_rot", now, body, oldSecret)
		valid := h.Get(webhook.HeaderSignature)
		h.Set(webhook.HeaderSignature, "v2,abc  nocomma v1,!!! v1a,short v1,"+strings.Repeat("A", 200)+"\t"+valid+" v1,")
		assert.NoError(t, verifierAt(t, now, oldSecret).Verify(h, body))
	})
}

func TestVerifyTampered(t *testing.T) {
	t.Parallel()
	hmacSecret := whsec(testKey(32))
	edSecret, edPublic := webhook.NewKeyPair()
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"amount":100}`)
	tests := []struct {
		name   string
		tamper func(h http.Header, body []byte) []byte
	}{
		{name: "body", tamper: func(_ http.Header, body []byte) []byte { return []byte(`{"amount":900}`) }},
		{name: "body with trailing byte", tamper: func(_ http.Header, body []byte) []byte { return append(bytes.Clone(body), ' ') }},
		{name: "empty body", tamper: func(http.Header, []byte) []byte { return nil }},
		{name: "id", tamper: func(h http.Header, body []byte) []byte { h.Set(webhook.HeaderID, "msg_2"); return body }},
		{name: "timestamp within tolerance", tamper: func(h http.Header, body []byte) []byte {
			h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return body
		}},
		{name: "timestamp with plus sign", tamper: func(h http.Header, body []byte) []byte {
			h.Set(webhook.HeaderTimestamp, "+"+h.Get(webhook.HeaderTimestamp))
			return body
		}},
		{name: "signature scheme swapped", tamper: func(h http.Header, body []byte) []byte {
			sig := h.Get(webhook.HeaderSignature)
			if rest, ok := strings.CutPrefix(sig, "v1a,"); ok {
				h.Set(webhook.HeaderSignature, "v1,"+rest)
			} else {
				h.Set(webhook.HeaderSignature, "v1a,"+strings.TrimPrefix(sig, "v1,"))
			}
			return body
		}},
		{name: "signature truncated", tamper: func(h http.Header, body []byte) []byte {
			sig := h.Get(webhook.HeaderSignature)
			h.Set(webhook.HeaderSignature, sig[:len(sig)-4])
			return body
		}},
	}
	for _, key := range []struct{ name, signWith, verifyWith string }{
		{"hmac", hmacSecret, hmacSecret},
		{"ed25519", edSecret, edPublic},
	} {
		for _, tt := range tests {
			t.Run(key.name+"/"+tt.name, func(t *testing.T) {
				h := standardSign(t, "msg_1", now, body, key.signWith)
				v := verifierAt(t, now, key.verifyWith)
				require.NoError(t, v.Verify(h, body), "precondition: the untampered message verifies")
				got := tt.tamper(h, body)
				assert.ErrorIs(t, v.Verify(h, got), webhook.ErrNoMatchingSignature)
			})
		}
	}
}

func TestVerifyOneCall(t *testing.T) {
	t.Parallel()
	secret := whsec(testKey(32))
	body := []byte(`{}`)
	h := standardSign(t, "msg_1", time.Now(), body, secret)
	assert.NoError(t, webhook.Verify(secret, h, body))
	assert.ErrorIs(t, webhook.Verify(whsec(testKey(24)), h, body), webhook.ErrNoMatchingSignature)
	assert.ErrorIs(t, webhook.Verify("not-a-secret", h, body), webhook.ErrInvalidSecret)
}

func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	secret := whsec(testKey(32))
	now := time.Unix(1_700_000_000, 0)
	v := verifierAt(t, now, secret)
	request := func(body []byte) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
		for k, vals := range standardSign(t, "msg_1", now, body, secret) {
			r.Header[k] = vals
		}
		return r
	}
	tests := []struct {
		name     string
		size     int
		maxBytes int64
		want     error
	}{
		{name: "under the limit", size: 99, maxBytes: 100},
		{name: "at the limit", size: 100, maxBytes: 100},
		{name: "over the limit", size: 101, maxBytes: 100, want: webhook.ErrBodyTooLarge},
		{name: "empty", size: 0, maxBytes: 100},
		{name: "default limit, at it", size: webhook.DefaultMaxBodyBytes, maxBytes: 0},
		{name: "default limit, over it", size: webhook.DefaultMaxBodyBytes + 1, maxBytes: 0, want: webhook.ErrBodyTooLarge},
		{name: "negative means default", size: webhook.DefaultMaxBodyBytes + 1, maxBytes: -1, want: webhook.ErrBodyTooLarge},
		{name: "largest limit", size: 10, maxBytes: 1<<63 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.Repeat([]byte{'x'}, tt.size)
			got, err := v.VerifyRequest(request(body), tt.maxBytes)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, len(body), len(got))
			assert.True(t, bytes.Equal(body, got))
		})
	}

	t.Run("bad signature returns no body", func(t *testing.T) {
		r := request([]byte(`{"a":1}`))
		r.Body = io.NopCloser(strings.NewReader(`{"a":2}`))
		got, err := v.VerifyRequest(r, 0)
		assert.ErrorIs(t, err, webhook.ErrNoMatchingSignature)
		assert.Nil(t, got)
	})
	t.Run("read error", func(t *testing.T) {
		r := request([]byte(`{}`))
		boom := errors.New("connection reset")
		r.Body = io.NopCloser(iotest.ErrReader(boom))
		_, err := v.VerifyRequest(r, 0)
		assert.ErrorIs(t, err, boom)
	})
	t.Run("nil body", func(t *testing.T) {
		r := request(nil)
		r.Body = nil
		got, err := v.VerifyRequest(r, 0)
		assert.NoError(t, err)
		assert.Empty(t, got)
	})
}

func TestNewVerifierInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
	}{
		{name: "none"},
		{name: "bad secret", secrets: []string{whsec(testKey(10))}},
		{name: "bad second secret", secrets: []string{whsec(testKey(32)), "whsec_" + strings.Repeat("Z", 21) + "!"}},
		{name: "short public key", secrets: []string{webhook.PublicKeyPrefix + "c2hvcnRwdWJsaWNrZXlieXRlcw=="}},
		{name: "public key not base64", secrets: []string{webhook.PublicKeyPrefix + "****"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := webhook.NewVerifier(tt.secrets...)
			assert.Nil(t, v)
			assert.ErrorIs(t, err, webhook.ErrInvalidSecret)
			for _, s := range tt.secrets {
				assertNoLeak(t, err.Error(), s, nil)
			}
		})
	}
}

// TestVerifyErrorsDoNotLeak drives Verify through each failure and checks that no message
// carries the secret or a signature.
func TestVerifyErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	key := testKey(32)
	secret := whsec(key)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"n":1}`)
	good := standardSign(t, "msg_1", now, body, secret)
	sig := strings.TrimPrefix(good.Get(webhook.HeaderSignature), "v1,")
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		now    time.Time
	}{
		{name: "missing", header: http.Header{}, body: body, now: now},
		{name: "invalid timestamp", header: signedHeader("msg_1", "x", "v1,"+sig), body: body, now: now},
		{name: "too old", header: good, body: body, now: now.Add(time.Hour)},
		{name: "too new", header: good, body: body, now: now.Add(-time.Hour)},
		{name: "no match", header: good, body: []byte("{}"), now: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifierAt(t, tt.now, secret).Verify(tt.header, tt.body)
			require.Error(t, err)
			assertNoLeak(t, err.Error(), secret, key)
			assert.NotContains(t, err.Error(), sig)
		})
	}
}

func TestVerifierConcurrent(t *testing.T) {
	t.Parallel()
	secret := whsec(testKey(32))
	now := time.Unix(1_700_000_000, 0)
	v := verifierAt(t, now, secret, whsec(testKey(24)))
	h := standardSign(t, "msg_1", now, []byte(`{}`), secret)
	errs := make(chan error, 64)
	for range cap(errs) {
		go func() { errs <- v.Verify(h, []byte(`{}`)) }()
	}
	for range cap(errs) {
		assert.NoError(t, <-errs)
	}
}

// FuzzVerify checks that no header or body makes Verify panic, that it fails only with
// its documented errors, and that a message signed by StandardSigner always verifies.
func FuzzVerify(f *testing.F) {
	for _, seed := range []struct {
		id, ts, sig string
		body        []byte
	}{
		{"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`)},
		{"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==", []byte(`{"test": 2432232314}`)},
		{"", "", "", nil},
		{"msg_1", "-1", "v1,", []byte("{}")},
		{"msg 1\x00", "+1614265330", "v1,,, v1a,==== v1 ,x", []byte{0xff, 0xfe}},
		{"msg_1", "99999999999999999999", "v1," + strings.Repeat("A", 64), []byte("[]")},
	} {
		f.Add(seed.id, seed.ts, seed.sig, seed.body)
	}
	hmacSecret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	edSecret := "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
	edPublic := "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
	now := time.Unix(1_614_265_330, 0)
	v := verifierAt(f, now, hmacSecret, edPublic)
	secrets := []webhook.Secret{mustParseSecret(f, hmacSecret), mustParseSecret(f, edSecret)}
	known := []error{webhook.ErrMissingHeader, webhook.ErrInvalidHeader, webhook.ErrTimestampTooOld,
		webhook.ErrTimestampTooNew, webhook.ErrNoMatchingSignature}

	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		if err := v.Verify(h, body); err != nil {
			matched := false
			for _, k := range known {
				matched = matched || errors.Is(err, k)
			}
			assert.True(t, matched, "undocumented error: %v", err)
		}

		if id == "" {
			return // Verify requires an ID; Send always sets one
		}
		signed := http.Header{}
		require.NoError(t, webhook.StandardSigner{}.Sign(signed, webhook.Message{ID: id, Timestamp: now, Body: body}, secrets))
		require.NoError(t, v.Verify(signed, body))
		for _, key := range []string{hmacSecret, edPublic} {
			require.NoError(t, verifierAt(t, now, key).Verify(signed, body), "each signature alone")
		}
		assert.ErrorIs(t, v.Verify(signed, append(bytes.Clone(body), '!')), webhook.ErrNoMatchingSignature)
	})
}

// ExampleVerifier verifies a request signed as in the Standard Webhooks specification.
func ExampleVerifier() {
	v, err := webhook.NewVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	// A fixed clock, because the example's signature is from 2021.
	v.Now = func() time.Time { return time.Unix(1614265330, 0) }

	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	fmt.Println(v.Verify(h, []byte(`{"test": 2432232314}`)))

	err = v.Verify(h, []byte(`{"test": 1}`))
	fmt.Println(errors.Is(err, webhook.ErrNoMatchingSignature))
	// Output:
	// <nil>
	// true
}
