package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a webhook-timestamp may lie from the receiver's clock, in
// either direction, before Verify rejects the request as a possible replay.
const DefaultTolerance = 5 * time.Minute

// DefaultMaxBodyBytes is the body size VerifyRequest reads at most when given 0.
const DefaultMaxBodyBytes = 1 << 20

// Errors returned by Verify. Each is returned wrapped; test with errors.Is.
var (
	// ErrMissingHeader: webhook-id, webhook-timestamp or webhook-signature is absent.
	ErrMissingHeader = errors.New("webhook: missing signature header")
	// ErrInvalidHeader: a header is present but malformed (timestamp not an integer, ...).
	ErrInvalidHeader = errors.New("webhook: malformed signature header")
	// ErrNoMatchingSignature: no signature in webhook-signature matches any known secret.
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
	// ErrTimestampTooOld: webhook-timestamp is more than the tolerance in the past.
	ErrTimestampTooOld = errors.New("webhook: timestamp too old")
	// ErrTimestampTooNew: webhook-timestamp is more than the tolerance in the future.
	ErrTimestampTooNew = errors.New("webhook: timestamp too new")
	// ErrBodyTooLarge: VerifyRequest's body exceeded its limit.
	ErrBodyTooLarge = errors.New("webhook: request body too large")
)

// Verifier checks Standard Webhooks signatures on the receiving side. It accepts whsec_
// secrets (v1, HMAC-SHA256) and whpk_ public keys (v1a, ed25519); during a rotation give it
// every secret still in use. Signatures are compared in constant time.
//
// A Verifier is safe for concurrent use once configured; set Tolerance and Now before use.
type Verifier struct {
	// Tolerance is the allowed clock distance of webhook-timestamp. Zero means
	// DefaultTolerance; a negative value disables the check (not recommended).
	Tolerance time.Duration
	// Now returns the receiver's current time. Nil means time.Now.
	Now func() time.Time

	macs [][]byte
	pubs []ed25519.PublicKey
}

// NewVerifier returns a Verifier for the given secrets (whsec_...) and public keys
// (whpk_...). The error wraps ErrInvalidSecret and does not contain the secret.
func NewVerifier(secrets ...string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: NewVerifier needs at least one secret", ErrInvalidSecret)
	}
	v := &Verifier{}
	for i, s := range secrets {
		if strings.HasPrefix(s, PublicKeyPrefix) {
			key, err := base64.StdEncoding.DecodeString(s[len(PublicKeyPrefix):])
			if err != nil || len(key) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("%w: secret %d: a %s key must be the base64 of a %d-byte ed25519 public key", ErrInvalidSecret, i, PublicKeyPrefix, ed25519.PublicKeySize)
			}
			v.pubs = append(v.pubs, ed25519.PublicKey(key))
			continue
		}
		sec, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		if k := sec.key(); k.ed != nil {
			// A receiver given the private key can still verify, with its public half.
			v.pubs = append(v.pubs, k.ed.Public().(ed25519.PublicKey))
			continue
		}
		v.macs = append(v.macs, sec.HMACKey())
	}
	return v, nil
}

// Verify is a one-call form of NewVerifier(secret) and (*Verifier).Verify with the default
// tolerance.
func Verify(secret string, h http.Header, body []byte) error {
	v, err := NewVerifier(secret)
	if err != nil {
		return err
	}
	return v.Verify(h, body)
}

// maxEd25519Signatures bounds the v1a entries Verify checks: each check hashes the whole
// body, and senders rotating keys send one or two.
const maxEd25519Signatures = 8

// Verify checks the signature headers in h against body. It returns nil when at least one
// signature matches a known secret and the timestamp is within tolerance. Of the v1a
// (ed25519) entries in webhook-signature only the first 8 well-formed ones are checked, so
// that a header stuffed with bogus entries cannot make Verify hash the body thousands of
// times.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for i, val := range [3]string{id, ts, sigs} {
		if val == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, [3]string{HeaderID, HeaderTimestamp, HeaderSignature}[i])
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not unix seconds", ErrInvalidHeader, HeaderTimestamp)
	}
	if err := v.checkTimestamp(time.Unix(sec, 0)); err != nil {
		return err
	}
	// Each key's MAC is computed once, however many entries the header holds, so a header
	// stuffed with bogus entries costs a comparison each, not a pass over the body.
	var macs [][sha256.Size]byte
	var content []byte // id.ts.body, built only for ed25519 keys
	edChecked := 0
	for _, entry := range strings.Fields(sigs) {
		scheme, sig64, ok := strings.Cut(entry, ",")
		if !ok {
			continue
		}
		switch scheme {
		case "v1":
			if len(v.macs) == 0 {
				continue
			}
			var buf [sha256.Size + 4]byte
			if base64.StdEncoding.DecodedLen(len(sig64)) > len(buf) {
				continue // too long to be an HMAC-SHA256
			}
			n, err := base64.StdEncoding.Decode(buf[:], []byte(sig64))
			if err != nil || n != sha256.Size {
				continue
			}
			sig := buf[:n]
			if macs == nil {
				macs = make([][sha256.Size]byte, len(v.macs))
				for i, key := range v.macs {
					m := hmac.New(sha256.New, key)
					m.Write([]byte(id))
					m.Write([]byte{'.'})
					m.Write([]byte(ts))
					m.Write([]byte{'.'})
					m.Write(body)
					m.Sum(macs[i][:0])
				}
			}
			for i := range macs {
				if hmac.Equal(macs[i][:], sig) {
					return nil
				}
			}
		case "v1a":
			if len(v.pubs) == 0 {
				continue
			}
			sig, err := base64.StdEncoding.DecodeString(sig64)
			if err != nil || len(sig) != ed25519.SignatureSize || edChecked == maxEd25519Signatures {
				continue
			}
			edChecked++
			if content == nil {
				content = append(append(append(append([]byte(id), '.'), ts...), '.'), body...)
			}
			for _, pub := range v.pubs {
				if ed25519.Verify(pub, content, sig) {
					return nil
				}
			}
		}
	}
	return ErrNoMatchingSignature
}

func (v *Verifier) checkTimestamp(t time.Time) error {
	tol := v.Tolerance
	if tol < 0 {
		return nil
	}
	if tol == 0 {
		tol = DefaultTolerance
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	switch {
	case t.Before(now.Add(-tol)):
		return fmt.Errorf("%w: %s is %s old, tolerance %s", ErrTimestampTooOld, HeaderTimestamp, now.Sub(t).Truncate(time.Second), tol)
	case t.After(now.Add(tol)):
		return fmt.Errorf("%w: %s is %s ahead, tolerance %s", ErrTimestampTooNew, HeaderTimestamp, t.Sub(now).Truncate(time.Second), tol)
	}
	return nil
}

// VerifyRequest reads r's body (at most maxBytes; 0 means DefaultMaxBodyBytes), verifies
// it and returns it. On error the body is not returned.
func (v *Verifier) VerifyRequest(r *http.Request, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	if r.Body == nil {
		return nil, v.Verify(r.Header, nil)
	}
	limit := maxBytes
	if limit < math.MaxInt64 {
		limit++ // one byte more, to tell a body of exactly maxBytes from a longer one
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("webhook: reading request body: %w", err)
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, maxBytes)
	}
	if err := v.Verify(r.Header, body); err != nil {
		return nil, err
	}
	return body, nil
}
