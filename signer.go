package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Standard Webhooks header names, set on every request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	// DefaultVersionHeader carries the event's version (see WithVersionHeader).
	DefaultVersionHeader = "webhook-version"
	// DefaultHexSignatureHeader is the header HexSigner uses when Header is empty.
	DefaultHexSignatureHeader = "X-Webhook-Signature"
)

// Secret prefixes. A symmetric secret is "whsec_" followed by the standard base64 of 24 to
// 64 random bytes. An asymmetric one is "whsk_" followed by the base64 of an ed25519
// private key (64 bytes); its receivers verify with the "whpk_" public key.
const (
	SecretPrefix     = "whsec_"
	PrivateKeyPrefix = "whsk_"
	PublicKeyPrefix  = "whpk_"

	// MinSecretBytes and MaxSecretBytes bound a symmetric secret's decoded length.
	MinSecretBytes = 24
	MaxSecretBytes = 64
	// DefaultSecretBytes is the length of secrets made by NewSecret.
	DefaultSecretBytes = 32
)

// Secret is a parsed signing secret. Its String method never reveals the key.
// A Secret is safe for concurrent use.
type Secret struct {
	ed  ed25519.PrivateKey // set for whsk_ secrets
	mac *macKey            // set for whsec_ secrets
}

type macKey struct {
	key  []byte
	pool sync.Pool // of hash.Hash keyed with key; Reset restores the keyed state
}

func (k *macKey) get() hash.Hash {
	if h, ok := k.pool.Get().(hash.Hash); ok {
		return h
	}
	return hmac.New(sha256.New, k.key)
}

func (k *macKey) put(h hash.Hash) { h.Reset(); k.pool.Put(h) }

// ParseSecret parses a whsec_ (HMAC-SHA256) or whsk_ (ed25519) secret. The error wraps
// ErrInvalidSecret and does not contain the secret.
func ParseSecret(s string) (Secret, error) {
	switch {
	case strings.HasPrefix(s, SecretPrefix):
		key, err := base64.StdEncoding.DecodeString(s[len(SecretPrefix):])
		if err != nil {
			return Secret{}, fmt.Errorf("%w: the part after %q is not standard base64; generate one with webhook.NewSecret", ErrInvalidSecret, SecretPrefix)
		}
		if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
			return Secret{}, fmt.Errorf("%w: decodes to %d bytes, want %d to %d; generate one with webhook.NewSecret", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
		}
		return Secret{mac: &macKey{key: key}}, nil
	case strings.HasPrefix(s, PrivateKeyPrefix):
		key, err := base64.StdEncoding.DecodeString(s[len(PrivateKeyPrefix):])
		if err != nil || len(key) != ed25519.PrivateKeySize {
			return Secret{}, fmt.Errorf("%w: a %s secret must be the base64 of a %d-byte ed25519 private key; generate one with webhook.NewKeyPair", ErrInvalidSecret, PrivateKeyPrefix, ed25519.PrivateKeySize)
		}
		return Secret{ed: ed25519.PrivateKey(key)}, nil
	default:
		return Secret{}, fmt.Errorf("%w: must start with %q (or %q for ed25519); generate one with webhook.NewSecret", ErrInvalidSecret, SecretPrefix, PrivateKeyPrefix)
	}
}

// IsAsymmetric reports whether s is an ed25519 (whsk_) secret.
func (s Secret) IsAsymmetric() bool { return s.ed != nil }

// HMACKey returns the decoded key of a whsec_ secret, or nil for an ed25519 secret.
// Custom Signers use it; the returned slice must not be modified.
func (s Secret) HMACKey() []byte {
	if s.mac == nil {
		return nil
	}
	return s.mac.key
}

// String returns a redacted form, so a Secret printed by mistake leaks nothing.
func (s Secret) String() string {
	if s.ed != nil {
		return PrivateKeyPrefix + "[redacted]"
	}
	return SecretPrefix + "[redacted]"
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// NewSecret returns a new random symmetric secret, "whsec_" and the base64 of
// DefaultSecretBytes random bytes.
func NewSecret() string {
	b := make([]byte, DefaultSecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// NewKeyPair returns a new ed25519 signing secret ("whsk_...") for the Sender and its
// public key ("whpk_...") for receivers.
func NewKeyPair() (secret, publicKey string) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader) // crypto/rand never fails
	return PrivateKeyPrefix + base64.StdEncoding.EncodeToString(priv),
		PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// Message is what a Signer signs: the event ID, the attempt's timestamp and the body.
type Message struct {
	ID        string
	Timestamp time.Time
	Body      []byte
}

// Signer adds signature headers to an outgoing request. The Sender calls it on every
// attempt with a fresh timestamp, after setting the webhook-id and webhook-timestamp
// headers. Secrets holds the endpoint's active secrets, the current one first.
// Implementations must be safe for concurrent use and must not log secrets.
type Signer interface {
	Sign(h http.Header, msg Message, secrets []Secret) error
}

// ErrNoSecret is returned by a Signer given no secret it can use.
var ErrNoSecret = errors.New("webhook: endpoint has no secret this signer can use")

// StandardSigner signs with the Standard Webhooks scheme, version 1: webhook-signature
// holds "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>" for each whsec_ secret and
// "v1a,<base64 ed25519 signature>" for each whsk_ secret, separated by spaces. It also
// sets webhook-id and webhook-timestamp. It is the default Signer.
type StandardSigner struct{}

// Sign implements Signer.
func (StandardSigner) Sign(h http.Header, msg Message, secrets []Secret) error {
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	ts := formatUnix(msg.Timestamp)
	var buf [256]byte
	out := buf[:0]
	for i, s := range secrets {
		if i > 0 {
			out = append(out, ' ')
		}
		out = appendStandardSignature(out, s, msg.ID, ts, msg.Body)
	}
	h[HeaderID] = []string{msg.ID}
	h[HeaderTimestamp] = []string{ts}
	h[HeaderSignature] = []string{string(out)}
	return nil
}

// appendStandardSignature appends "v1,<sig>" or "v1a,<sig>" for one secret.
func appendStandardSignature(out []byte, s Secret, id, ts string, body []byte) []byte {
	if s.ed != nil {
		content := make([]byte, 0, len(id)+len(ts)+2+len(body))
		content = append(append(append(append(append(content, id...), '.'), ts...), '.'), body...)
		out = append(out, "v1a,"...)
		return base64.StdEncoding.AppendEncode(out, ed25519.Sign(s.ed, content))
	}
	var sum [sha256.Size]byte
	out = append(out, "v1,"...)
	return base64.StdEncoding.AppendEncode(out, standardMAC(sum[:0], s.mac, id, ts, body))
}

// standardMAC appends HMAC-SHA256(key, id "." ts "." body) to dst.
func standardMAC(dst []byte, k *macKey, id, ts string, body []byte) []byte {
	h := k.get()
	var sep = [1]byte{'.'}
	_, _ = h.Write([]byte(id))
	_, _ = h.Write(sep[:])
	_, _ = h.Write([]byte(ts))
	_, _ = h.Write(sep[:])
	_, _ = h.Write(body)
	dst = h.Sum(dst)
	k.put(h)
	return dst
}

// HexSigner signs in the single-header style of GitHub and many hand-written receivers:
// Header carries Prefix followed by the lowercase hex HMAC-SHA256 of the body alone,
// keyed with the decoded bytes of the endpoint's first whsec_ secret. The body is not
// bound to a timestamp in this scheme, so prefer StandardSigner where receivers allow.
type HexSigner struct {
	// Header is the signature header's name. Empty means DefaultHexSignatureHeader.
	Header string
	// Prefix is written before the hex digest, for example "sha256=" (GitHub's form).
	// Empty means none.
	Prefix string
}

// Sign implements Signer.
func (s HexSigner) Sign(h http.Header, msg Message, secrets []Secret) error {
	var key *macKey
	for _, sec := range secrets {
		if sec.mac != nil {
			key = sec.mac
			break
		}
	}
	if key == nil {
		return ErrNoSecret
	}
	name := s.Header
	if name == "" {
		name = DefaultHexSignatureHeader
	}
	mac := key.get()
	_, _ = mac.Write(msg.Body)
	var sum [sha256.Size]byte
	digest := mac.Sum(sum[:0])
	key.put(mac)
	out := make([]byte, 0, len(s.Prefix)+2*sha256.Size)
	out = append(out, s.Prefix...)
	out = hex.AppendEncode(out, digest)
	h.Set(name, string(out))
	return nil
}
