package webhook

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
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

// The header names in Go's canonical form, so http.Header.Get finds them and setting them
// costs no canonicalisation on the hot path.
var (
	canonicalID        = http.CanonicalHeaderKey(HeaderID)
	canonicalTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonicalSignature = http.CanonicalHeaderKey(HeaderSignature)
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

// Secret is a parsed signing secret. Its String method never reveals the key, and neither
// does any fmt verb, however the Secret is nested. The zero Secret holds no key and is
// skipped by the Signers. A Secret is safe for concurrent use.
type Secret struct {
	// A pointer to a pointer, because fmt cannot call String on a Secret held in an
	// unexported field: it then prints the fields, dereferencing one pointer to a struct
	// (under %s, say) but printing a pointer to a pointer as an address.
	k **secretKey // nil for the zero Secret
}

type secretKey struct {
	ed  ed25519.PrivateKey // set for whsk_ secrets
	mac *macKey            // set for whsec_ secrets
}

func newSecret(k *secretKey) Secret { return Secret{k: &k} }

// key returns s's key material, or nil for the zero Secret.
func (s Secret) key() *secretKey {
	if s.k == nil {
		return nil
	}
	return *s.k
}

type macKey struct {
	key  []byte
	pool sync.Pool // of *macState keyed with key
}

// macState is a keyed HMAC-SHA256 with scratch space, so that signing allocates nothing
// per secret: keying costs two SHA-256 blocks, more than a small body.
type macState struct {
	h       hash.Hash // Reset restores the keyed state
	scratch []byte    // id "." ts "."
	sum     [sha256.Size]byte
}

// maxPooledScratch bounds the scratch buffer a pooled macState keeps.
const maxPooledScratch = 512

func (k *macKey) get() *macState {
	if st, ok := k.pool.Get().(*macState); ok {
		return st
	}
	return &macState{h: hmac.New(sha256.New, k.key), scratch: make([]byte, 0, 64)}
}

func (k *macKey) put(st *macState) {
	if cap(st.scratch) > maxPooledScratch {
		st.scratch = make([]byte, 0, 64)
	}
	st.h.Reset()
	k.pool.Put(st)
}

// appendStandardMAC appends the base64 HMAC-SHA256(key, id "." ts "." body) to dst.
func (k *macKey) appendStandardMAC(dst []byte, id string, ts, body []byte) []byte {
	st := k.get()
	st.scratch = append(append(append(append(st.scratch[:0], id...), '.'), ts...), '.')
	_, _ = st.h.Write(st.scratch)
	_, _ = st.h.Write(body)
	dst = base64.StdEncoding.AppendEncode(dst, st.h.Sum(st.sum[:0]))
	k.put(st)
	return dst
}

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
		return newSecret(&secretKey{mac: &macKey{key: key}}), nil
	case strings.HasPrefix(s, PrivateKeyPrefix):
		key, err := base64.StdEncoding.DecodeString(s[len(PrivateKeyPrefix):])
		if err != nil || len(key) != ed25519.PrivateKeySize {
			return Secret{}, fmt.Errorf("%w: a %s secret must be the base64 of a %d-byte ed25519 private key; generate one with webhook.NewKeyPair", ErrInvalidSecret, PrivateKeyPrefix, ed25519.PrivateKeySize)
		}
		// The key's second half is its public key; a mismatch would yield signatures that
		// no receiver can verify.
		if !bytes.Equal(ed25519.NewKeyFromSeed(key[:ed25519.SeedSize])[ed25519.SeedSize:], key[ed25519.SeedSize:]) {
			return Secret{}, fmt.Errorf("%w: the %s secret's public half does not match its private half; copy it again or generate one with webhook.NewKeyPair", ErrInvalidSecret, PrivateKeyPrefix)
		}
		return newSecret(&secretKey{ed: ed25519.PrivateKey(key)}), nil
	default:
		return Secret{}, fmt.Errorf("%w: must start with %q (or %q for ed25519); generate one with webhook.NewSecret", ErrInvalidSecret, SecretPrefix, PrivateKeyPrefix)
	}
}

// IsAsymmetric reports whether s is an ed25519 (whsk_) secret.
func (s Secret) IsAsymmetric() bool {
	k := s.key()
	return k != nil && k.ed != nil
}

// HMACKey returns the decoded key of a whsec_ secret, or nil for an ed25519 secret.
// Custom Signers use it; the returned slice must not be modified.
func (s Secret) HMACKey() []byte {
	k := s.key()
	if k == nil || k.mac == nil {
		return nil
	}
	return k.mac.key
}

// String returns a redacted form, so a Secret printed by mistake leaks nothing.
func (s Secret) String() string {
	if s.IsAsymmetric() {
		return PrivateKeyPrefix + "[redacted]"
	}
	return SecretPrefix + "[redacted]"
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb (%x and %d included) prints String.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
		return
	}
	_, _ = io.WriteString(f, s.String())
}

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

// Sign implements Signer. It replaces any webhook-id, webhook-timestamp and
// webhook-signature values already in h, whether stored under the canonical key or the
// lowercase one. Zero Secrets are skipped; ErrNoSecret means none was left.
func (StandardSigner) Sign(h http.Header, msg Message, secrets []Secret) error {
	// One buffer holds the timestamp and then the signatures, so that both header values
	// come from a single string.
	var buf [256]byte
	out := strconv.AppendInt(buf[:0], msg.Timestamp.Unix(), 10)
	tsLen := len(out)
	signed := 0
	for _, s := range secrets {
		k := s.key()
		if k == nil {
			continue
		}
		if signed > 0 {
			out = append(out, ' ')
		}
		out = appendStandardSignature(out, k, msg.ID, out[:tsLen], msg.Body)
		signed++
	}
	if signed == 0 {
		return ErrNoSecret
	}
	str := string(out)
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = msg.ID, str[:tsLen], str[tsLen:]
	delete(h, HeaderID)
	delete(h, HeaderTimestamp)
	delete(h, HeaderSignature)
	h[canonicalID] = vals[0:1:1]
	h[canonicalTimestamp] = vals[1:2:2]
	h[canonicalSignature] = vals[2:3:3]
	return nil
}

// appendStandardSignature appends "v1,<sig>" or "v1a,<sig>" for one secret.
func appendStandardSignature(out []byte, k *secretKey, id string, ts, body []byte) []byte {
	if k.ed != nil {
		content := make([]byte, 0, len(id)+len(ts)+2+len(body))
		content = append(append(append(append(append(content, id...), '.'), ts...), '.'), body...)
		out = append(out, "v1a,"...)
		return base64.StdEncoding.AppendEncode(out, ed25519.Sign(k.ed, content))
	}
	out = append(out, "v1,"...)
	return k.mac.appendStandardMAC(out, id, ts, body)
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
		if k := sec.key(); k != nil && k.mac != nil {
			key = k.mac
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
	out := make([]byte, 0, len(s.Prefix)+2*sha256.Size)
	out = append(out, s.Prefix...)
	st := key.get()
	_, _ = st.h.Write(msg.Body)
	out = hex.AppendEncode(out, st.h.Sum(st.sum[:0]))
	key.put(st)
	h.Set(name, string(out))
	return nil
}
