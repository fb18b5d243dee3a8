package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
