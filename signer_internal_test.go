package webhook

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSignatureOnly is the part of StandardSigner.Sign that computes the signature
// (appendStandardMAC: the pooled keyed HMAC, the id.timestamp. prefix, base64) without
// writing the three header values, beside BenchmarkSign's bare-hmac-reset-1KiB (the
// same bytes through one reused crypto/hmac): the difference between the two, and
// between this and BenchmarkSign/standard-1KiB, says where Sign's time goes.
//
//	go test -run '^$' -bench 'Sign' -benchmem .
func BenchmarkSignatureOnly(b *testing.B) {
	const id = "msg_01KAZ3GQ4P8R9T6V2W5X7Y0Z1A" // as in BenchmarkSign
	ts := time.Unix(1_767_225_600, 0)
	sec, err := ParseSecret(NewSecret())
	if err != nil {
		b.Fatal(err)
	}
	mac := sec.key().mac
	body := bytes.Repeat([]byte("x"), 1<<10)
	tsBytes := strconv.AppendInt(nil, ts.Unix(), 10)
	var buf [64]byte
	// The benchmark measures what Sign sends: the same signature.
	h := http.Header{}
	if err := (StandardSigner{}).Sign(h, Message{ID: id, Timestamp: ts, Body: body}, []Secret{sec}); err != nil {
		b.Fatal(err)
	}
	if got, want := "v1,"+string(mac.appendStandardMAC(buf[:0], id, tsBytes, body)), h.Get(HeaderSignature); got != want {
		b.Fatalf("signature %q, Sign wrote %q", got, want)
	}
	b.Run("1KiB", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = mac.appendStandardMAC(buf[:0], id, tsBytes, body)
		}
	})
}
