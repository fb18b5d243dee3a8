package webhook_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// testKey returns n distinctive, deterministic key bytes.
func testKey(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0xA5 ^ i*7)
	}
	return b
}

func whsec(key []byte) string { return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key) }

func mustParseSecret(t testing.TB, s string) webhook.Secret {
	t.Helper()
	sec, err := webhook.ParseSecret(s)
	require.NoError(t, err)
	return sec
}

// assertNoLeak fails if text contains secret, its base64 part or its key in any common
// rendering (hex, decimal bytes).
func assertNoLeak(t *testing.T, text, secret string, key []byte) {
	t.Helper()
	if secret != "" {
		assert.NotContains(t, text, secret)
	}
	if _, b64, ok := strings.Cut(secret, "_"); ok && len(b64) > 8 {
		assert.NotContains(t, text, b64)
		assert.NotContains(t, text, b64[:16])
	}
	if len(key) >= 8 {
		assert.NotContains(t, strings.ToLower(text), hex.EncodeToString(key[:8]))
		assert.NotContains(t, text, strings.Trim(fmt.Sprint(key[:8]), "[]"))
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	_, edPriv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	tests := []struct {
		name   string
		secret string
		key    []byte // the decoded key the secret carries, for leak checks
		ok     bool
		asym   bool
	}{
		{name: "24 bytes", secret: whsec(testKey(24)), key: testKey(24), ok: true},
		{name: "32 bytes", secret: whsec(testKey(32)), key: testKey(32), ok: true},
		{name: "64 bytes", secret: whsec(testKey(64)), key: testKey(64), ok: true},
		{name: "ed25519 private key", secret: webhook.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(edPriv), key: edPriv, ok: true, asym: true},
		{name: "23 bytes", secret: whsec(testKey(23)), key: testKey(23)},
		{name: "65 bytes", secret: whsec(testKey(65)), key: testKey(65)},
		{name: "empty key", secret: webhook.SecretPrefix},
		{name: "empty string", secret: ""},
		{name: "bad base64", secret: webhook.SecretPrefix + "!!not*base64!!" + base64.StdEncoding.EncodeToString(testKey(32))},
		{name: "url-safe base64", secret: webhook.SecretPrefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16))},
		{name: "unpadded base64", secret: webhook.SecretPrefix + base64.RawStdEncoding.EncodeToString(testKey(31)), key: testKey(31)},
		{name: "missing prefix", secret: base64.StdEncoding.EncodeToString(testKey(32)), key: testKey(32)},
		{name: "wrong prefix case", secret: "WHSEC_" + base64.StdEncoding.EncodeToString(testKey(32)), key: testKey(32)},
		{name: "public key is not a secret", secret: webhook.PublicKeyPrefix + base64.StdEncoding.EncodeToString(edPriv.Public().(ed25519.PublicKey))},
		{name: "ed25519 seed only", secret: webhook.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(edPriv.Seed()), key: edPriv.Seed()},
		{name: "ed25519 mismatched public half", secret: webhook.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(append(slices.Clone(edPriv[:ed25519.SeedSize]), make([]byte, ed25519.PublicKeySize)...)), key: edPriv.Seed()},
		{name: "ed25519 bad base64", secret: webhook.PrivateKeyPrefix + "%%%" + base64.StdEncoding.EncodeToString(edPriv)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec, err := webhook.ParseSecret(tt.secret)
			if !tt.ok {
				require.Error(t, err)
				assert.ErrorIs(t, err, webhook.ErrInvalidSecret)
				assertNoLeak(t, err.Error(), tt.secret, tt.key)
				assert.Contains(t, err.Error(), "webhook.New", "the message should say how to fix it")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.asym, sec.IsAsymmetric())
			if tt.asym {
				assert.Nil(t, sec.HMACKey())
			} else {
				assert.Equal(t, tt.key, sec.HMACKey())
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	s1, s2 := webhook.NewSecret(), webhook.NewSecret()
	assert.NotEqual(t, s1, s2)
	for _, s := range []string{s1, s2} {
		require.True(t, strings.HasPrefix(s, webhook.SecretPrefix), "got %q", s)
		sec := mustParseSecret(t, s)
		assert.False(t, sec.IsAsymmetric())
		assert.Len(t, sec.HMACKey(), webhook.DefaultSecretBytes)
		assert.Equal(t, s, whsec(sec.HMACKey()), "the secret must round-trip")
	}
}

func TestSecretNewKeyPair(t *testing.T) {
	t.Parallel()
	secret, pub := webhook.NewKeyPair()
	secret2, pub2 := webhook.NewKeyPair()
	assert.NotEqual(t, secret, secret2)
	assert.NotEqual(t, pub, pub2)
	require.True(t, strings.HasPrefix(secret, webhook.PrivateKeyPrefix), "got %q", secret)
	require.True(t, strings.HasPrefix(pub, webhook.PublicKeyPrefix), "got %q", pub)

	sec := mustParseSecret(t, secret)
	assert.True(t, sec.IsAsymmetric())
	assert.Nil(t, sec.HMACKey())

	priv, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, webhook.PrivateKeyPrefix))
	require.NoError(t, err)
	require.Len(t, priv, ed25519.PrivateKeySize)
	pubKey, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pub, webhook.PublicKeyPrefix))
	require.NoError(t, err)
	assert.Equal(t, []byte(ed25519.PrivateKey(priv).Public().(ed25519.PublicKey)), pubKey, "the public key must belong to the secret")

	// A message signed with the secret verifies with the public key, and with the secret.
	now := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	require.NoError(t, webhook.StandardSigner{}.Sign(h, webhook.Message{ID: "msg_1", Timestamp: now, Body: []byte(`{}`)}, []webhook.Secret{sec}))
	assert.True(t, strings.HasPrefix(h.Get(webhook.HeaderSignature), "v1a,"))
	for _, key := range []string{pub, secret} {
		v, err := webhook.NewVerifier(key)
		require.NoError(t, err)
		v.Now = func() time.Time { return now }
		assert.NoError(t, v.Verify(h, []byte(`{}`)))
	}
}

type secretHolder struct {
	name   string
	secret webhook.Secret
}

type SecretHolder struct {
	Secret  webhook.Secret
	Secrets []webhook.Secret
}

func TestSecretRedacted(t *testing.T) {
	t.Parallel()
	_, edPriv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	tests := []struct {
		name   string
		secret string
		key    []byte
		want   string
	}{
		{name: "hmac", secret: whsec(testKey(32)), key: testKey(32), want: "whsec_[redacted]"},
		{name: "ed25519", secret: webhook.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(edPriv), key: edPriv, want: "whsk_[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sec := mustParseSecret(t, tt.secret)
			assert.Equal(t, tt.want, sec.String())
			assert.Equal(t, tt.want, sec.GoString())
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				assert.Equal(t, tt.want, fmt.Sprintf(format, sec), format)
				assert.Equal(t, tt.want, fmt.Sprintf(format, &sec), format+" of a pointer")
			}
			// Whatever the verb or however the Secret is nested, the key must not show. fmt
			// cannot call String through an unexported field; it must then print an address.
			values := []struct {
				what       string
				v          any
				viaMethods bool
			}{
				{"value", sec, true},
				{"pointer", &sec, true},
				{"slice", []webhook.Secret{sec, sec}, true},
				{"map", map[string]webhook.Secret{"k": sec}, true},
				{"exported field", SecretHolder{Secret: sec, Secrets: []webhook.Secret{sec}}, true},
				{"unexported field", secretHolder{name: "ep", secret: sec}, false},
				{"pointer to struct", &secretHolder{name: "ep", secret: sec}, false},
			}
			for _, v := range values {
				for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%t"} {
					assertNoLeak(t, fmt.Sprintf(format, v.v), tt.secret, tt.key)
				}
				if v.viaMethods {
					assert.Contains(t, fmt.Sprintf("%v", v.v), "[redacted]", v.what)
				}
			}
		})
	}
}

func TestHexSigner(t *testing.T) {
	t.Parallel()
	key1, key2 := testKey(32), testKey(40)
	sec1, sec2 := mustParseSecret(t, whsec(key1)), mustParseSecret(t, whsec(key2))
	edSecret, _ := webhook.NewKeyPair()
	ed := mustParseSecret(t, edSecret)
	body := []byte(`{"id":"msg_1","type":"order.created","data":{"n":1}}`)

	hexMAC := func(key, body []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	tests := []struct {
		name       string
		signer     webhook.HexSigner
		secrets    []webhook.Secret
		wantHeader string
		want       string
	}{
		{name: "defaults", signer: webhook.HexSigner{}, secrets: []webhook.Secret{sec1},
			wantHeader: webhook.DefaultHexSignatureHeader, want: hexMAC(key1, body)},
		{name: "github style", signer: webhook.HexSigner{Header: "X-Hub-Signature-256", Prefix: "sha256="}, secrets: []webhook.Secret{sec1},
			wantHeader: "X-Hub-Signature-256", want: "sha256=" + hexMAC(key1, body)},
		{name: "prefix with default header", signer: webhook.HexSigner{Prefix: "sha256="}, secrets: []webhook.Secret{sec1},
			wantHeader: webhook.DefaultHexSignatureHeader, want: "sha256=" + hexMAC(key1, body)},
		{name: "lowercase custom header", signer: webhook.HexSigner{Header: "x-signature"}, secrets: []webhook.Secret{sec1},
			wantHeader: "X-Signature", want: hexMAC(key1, body)},
		{name: "first hmac secret is used", signer: webhook.HexSigner{}, secrets: []webhook.Secret{ed, sec2, sec1},
			wantHeader: webhook.DefaultHexSignatureHeader, want: hexMAC(key2, body)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(tt.wantHeader, "stale")
			msg := webhook.Message{ID: "msg_1", Timestamp: time.Unix(1_700_000_000, 0), Body: body}
			require.NoError(t, tt.signer.Sign(h, msg, tt.secrets))
			assert.Equal(t, []string{tt.want}, h.Values(tt.wantHeader), "one value, replacing any earlier one")
			assert.Len(t, h, 1, "HexSigner sets only its own header: %v", h)
			// The same message signs the same way every time (the pooled state is reset).
			require.NoError(t, tt.signer.Sign(h, msg, tt.secrets))
			assert.Equal(t, tt.want, h.Get(tt.wantHeader))
		})
	}
}

func TestSignNoSecret(t *testing.T) {
	t.Parallel()
	edSecret, _ := webhook.NewKeyPair()
	ed := mustParseSecret(t, edSecret)
	tests := []struct {
		name    string
		signer  webhook.Signer
		secrets []webhook.Secret
	}{
		{name: "hex signer, ed25519 only", signer: webhook.HexSigner{}, secrets: []webhook.Secret{ed, ed}},
		{name: "hex signer, none", signer: webhook.HexSigner{}},
		{name: "hex signer, zero secret", signer: webhook.HexSigner{}, secrets: []webhook.Secret{{}}},
		{name: "standard signer, none", signer: webhook.StandardSigner{}},
		{name: "standard signer, empty", signer: webhook.StandardSigner{}, secrets: []webhook.Secret{}},
		{name: "standard signer, zero secret", signer: webhook.StandardSigner{}, secrets: []webhook.Secret{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			err := tt.signer.Sign(h, webhook.Message{ID: "msg_1", Timestamp: time.Unix(1, 0), Body: []byte("{}")}, tt.secrets)
			assert.ErrorIs(t, err, webhook.ErrNoSecret)
			assert.Empty(t, h.Get(webhook.HeaderSignature))
			assert.Empty(t, h.Get(webhook.DefaultHexSignatureHeader))
		})
	}
}

func TestStandardSignerHeaders(t *testing.T) {
	t.Parallel()
	sec := mustParseSecret(t, whsec(testKey(32)))
	h := http.Header{}
	// Values a previous attempt (or the caller) left behind are replaced, not added to.
	h.Set(webhook.HeaderID, "stale")
	h.Set(webhook.HeaderTimestamp, "1")
	h.Set(webhook.HeaderSignature, "v1,stale")
	h[webhook.HeaderSignature] = []string{"v1,stale-lowercase"} // set directly, not canonicalised
	ts := time.Date(2026, 1, 2, 15, 4, 5, 999_000_000, time.FixedZone("X", 3600))
	require.NoError(t, webhook.StandardSigner{}.Sign(h, webhook.Message{ID: "msg_abc", Timestamp: ts, Body: []byte("{}")}, []webhook.Secret{sec}))

	assert.Equal(t, []string{"msg_abc"}, h.Values(webhook.HeaderID))
	assert.Equal(t, []string{strconv.FormatInt(ts.Unix(), 10)}, h.Values(webhook.HeaderTimestamp), "unix seconds, sub-second part dropped")
	require.Len(t, h.Values(webhook.HeaderSignature), 1)
	assert.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, h.Get(webhook.HeaderSignature))
	assert.Len(t, h, 3, "only the three Standard Webhooks headers: %v", h)
	for name := range h {
		assert.Equal(t, http.CanonicalHeaderKey(name), name, "header keys must be canonical so Header.Get finds them")
	}
}

func TestStandardSignerFreshTimestamp(t *testing.T) {
	t.Parallel()
	sec := mustParseSecret(t, whsec(testKey(32)))
	v, err := webhook.NewVerifier(whsec(testKey(32)))
	require.NoError(t, err)
	body := []byte(`{"n":1}`)
	first := time.Unix(1_700_000_000, 0)
	second := first.Add(time.Second)

	h1, h2 := http.Header{}, http.Header{}
	require.NoError(t, webhook.StandardSigner{}.Sign(h1, webhook.Message{ID: "msg_1", Timestamp: first, Body: body}, []webhook.Secret{sec}))
	require.NoError(t, webhook.StandardSigner{}.Sign(h2, webhook.Message{ID: "msg_1", Timestamp: second, Body: body}, []webhook.Secret{sec}))

	assert.NotEqual(t, h1.Get(webhook.HeaderTimestamp), h2.Get(webhook.HeaderTimestamp))
	assert.NotEqual(t, h1.Get(webhook.HeaderSignature), h2.Get(webhook.HeaderSignature), "the signature must cover the timestamp")
	for _, tc := range []struct {
		h   http.Header
		now time.Time
	}{{h1, first}, {h2, second}} {
		v.Now = func() time.Time { return tc.now }
		assert.NoError(t, v.Verify(tc.h, body))
	}
	// The first attempt's signature does not carry over to the second attempt's timestamp.
	replayed := h2.Clone()
	replayed.Set(webhook.HeaderSignature, h1.Get(webhook.HeaderSignature))
	assert.ErrorIs(t, v.Verify(replayed, body), webhook.ErrNoMatchingSignature)
}

// TestSignConcurrent exercises the pooled HMAC states from many goroutines; run with -race.
func TestSignConcurrent(t *testing.T) {
	t.Parallel()
	secrets := []webhook.Secret{mustParseSecret(t, whsec(testKey(32))), mustParseSecret(t, whsec(testKey(24)))}
	msg := func(i int) webhook.Message {
		return webhook.Message{ID: "msg_" + strconv.Itoa(i), Timestamp: time.Unix(1_700_000_000, 0), Body: bytes.Repeat([]byte{byte(i)}, i)}
	}
	const n = 64
	want := make([]string, n)
	for i := range want {
		h := http.Header{}
		require.NoError(t, webhook.StandardSigner{}.Sign(h, msg(i), secrets))
		want[i] = h.Get(webhook.HeaderSignature)
	}
	got := make([]string, n)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for r := range 20 {
				for i := range n {
					if (i+g+r)%8 != 0 {
						continue
					}
					h := http.Header{}
					if err := (webhook.StandardSigner{}).Sign(h, msg(i), secrets); err != nil {
						t.Error(err)
						return
					}
					if s := h.Get(webhook.HeaderSignature); s != want[i] {
						got[i] = s // reported below; a mismatch means shared state leaked
					}
				}
			}
		})
	}
	wg.Wait()
	for i := range got {
		assert.Empty(t, got[i], "message %d", i)
	}
}

// BenchmarkSign compares StandardSigner with a bare crypto/hmac loop over the same bytes
// (id "." ts "." body), so the signer's overhead reads straight off one run:
//
//	go test -run x -bench Sign -benchmem -count 5 .
//
// bare-hmac follows the naive receiver/sender code (a new keyed HMAC per message);
// bare-hmac-reset keys once and resets, the floor for any HMAC-SHA256 implementation.
func BenchmarkSign(b *testing.B) {
	key := testKey(32)
	sec := mustParseSecret(b, whsec(key))
	secrets := []webhook.Secret{sec}
	const id = "msg_01KAZ3GQ4P8R9T6V2W5X7Y0Z1A"
	ts := time.Unix(1_767_225_600, 0)
	idBytes, tsBytes, dot := []byte(id), []byte(strconv.FormatInt(ts.Unix(), 10)), []byte{'.'}

	for _, size := range []struct {
		name string
		n    int
	}{{"200B", 200}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		body := bytes.Repeat([]byte("x"), size.n)
		msg := webhook.Message{ID: id, Timestamp: ts, Body: body}

		b.Run("standard-"+size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			h := http.Header{}
			for b.Loop() {
				if err := (webhook.StandardSigner{}).Sign(h, msg, secrets); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("bare-hmac-"+size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			var sum [sha256.Size]byte
			for b.Loop() {
				m := hmac.New(sha256.New, key)
				m.Write(idBytes)
				m.Write(dot)
				m.Write(tsBytes)
				m.Write(dot)
				m.Write(body)
				m.Sum(sum[:0])
			}
		})
		b.Run("bare-hmac-reset-"+size.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			var sum [sha256.Size]byte
			m := hmac.New(sha256.New, key)
			for b.Loop() {
				m.Reset()
				m.Write(idBytes)
				m.Write(dot)
				m.Write(tsBytes)
				m.Write(dot)
				m.Write(body)
				m.Sum(sum[:0])
			}
		})
	}
}
