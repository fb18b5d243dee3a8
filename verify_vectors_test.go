package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// vectorsFile holds the Standard Webhooks test vectors, copied from the specification's
// and svix's library tests. Do not edit it: the signer and verifier must agree with it.
const vectorsFile = "testdata/standard-webhooks-vectors.json"

type vectors struct {
	Source        string          `json:"source"`
	HMAC          []hmacVector    `json:"hmac_v1"`
	Ed25519       []ed25519Vector `json:"ed25519_v1a"`
	MustNotVerify []hmacVector    `json:"must_not_verify"`
}

// vectorMessage is the signed message of a vector. The body is Payload, or
// PayloadRepeat.Char repeated PayloadRepeat.Count times.
type vectorMessage struct {
	MsgID         string  `json:"msg_id"`
	Timestamp     int64   `json:"timestamp"`
	Payload       *string `json:"payload"`
	PayloadRepeat *struct {
		Char  string `json:"char"`
		Count int    `json:"count"`
	} `json:"payload_repeat"`
	Signature string `json:"signature"`
}

type hmacVector struct {
	Secret string `json:"secret"`
	vectorMessage
}

type ed25519Vector struct {
	SecretKey string `json:"secret_key"`
	PublicKey string `json:"public_key"`
	vectorMessage
}

func (m vectorMessage) body(t testing.TB) []byte {
	t.Helper()
	switch {
	case m.Payload != nil && m.PayloadRepeat == nil:
		return []byte(*m.Payload)
	case m.Payload == nil && m.PayloadRepeat != nil:
		require.Len(t, m.PayloadRepeat.Char, 1, "payload_repeat.char")
		require.Positive(t, m.PayloadRepeat.Count, "payload_repeat.count")
		return bytes.Repeat([]byte(m.PayloadRepeat.Char), m.PayloadRepeat.Count)
	}
	require.FailNow(t, "a vector needs exactly one of payload and payload_repeat")
	return nil
}

func (m vectorMessage) time() time.Time { return time.Unix(m.Timestamp, 0) }

func (m vectorMessage) header() http.Header {
	return signedHeader(m.MsgID, strconv.FormatInt(m.Timestamp, 10), m.Signature)
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	raw, err := os.ReadFile(vectorsFile)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v vectors
	require.NoError(t, dec.Decode(&v))
	require.NotEmpty(t, v.HMAC, "hmac_v1 vectors")
	require.NotEmpty(t, v.Ed25519, "ed25519_v1a vectors")
	require.NotEmpty(t, v.MustNotVerify, "must_not_verify vectors")
	return v
}

func TestVerifyStandardVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	for i, vec := range vs.HMAC {
		t.Run(fmt.Sprintf("hmac_v1/%d", i), func(t *testing.T) {
			body := vec.body(t)
			v := verifierAt(t, vec.time(), vec.Secret)
			assert.NoError(t, v.Verify(vec.header(), body))
		})
	}
	for i, vec := range vs.Ed25519 {
		for _, key := range []struct{ name, key string }{{"public key", vec.PublicKey}, {"secret key", vec.SecretKey}} {
			t.Run(fmt.Sprintf("ed25519_v1a/%d/%s", i, key.name), func(t *testing.T) {
				v := verifierAt(t, vec.time(), key.key)
				assert.NoError(t, v.Verify(vec.header(), vec.body(t)))
			})
		}
	}
	for i, vec := range vs.MustNotVerify {
		t.Run(fmt.Sprintf("must_not_verify/%d", i), func(t *testing.T) {
			v := verifierAt(t, vec.time(), vec.Secret)
			err := v.Verify(vec.header(), vec.body(t))
			assert.ErrorIs(t, err, webhook.ErrNoMatchingSignature)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), vec.Secret)
		})
	}
}

// TestSignStandardVectors proves the signer bit-exact with the specification: HMAC and
// ed25519 signatures are both deterministic.
func TestSignStandardVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	type signCase struct {
		name, secret string
		msg          vectorMessage
	}
	var cases []signCase
	for i, vec := range vs.HMAC {
		cases = append(cases, signCase{fmt.Sprintf("hmac_v1/%d", i), vec.Secret, vec.vectorMessage})
	}
	for i, vec := range vs.Ed25519 {
		cases = append(cases, signCase{fmt.Sprintf("ed25519_v1a/%d", i), vec.SecretKey, vec.vectorMessage})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := standardSign(t, tc.msg.MsgID, tc.msg.time(), tc.msg.body(t), tc.secret)
			assert.Equal(t, tc.msg.Signature, h.Get(webhook.HeaderSignature))
			assert.Equal(t, tc.msg.MsgID, h.Get(webhook.HeaderID))
			assert.Equal(t, strconv.FormatInt(tc.msg.Timestamp, 10), h.Get(webhook.HeaderTimestamp))
		})
	}
}
