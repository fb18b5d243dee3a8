package webhooktest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func ExampleTransport() {
	tr := webhooktest.NewTransport()
	tr.Script("https://example.com/hook",
		webhooktest.Status(http.StatusServiceUnavailable).WithHeader("Retry-After", "30"),
		webhooktest.Hangup(),
		webhooktest.Status(http.StatusOK), // repeats from here on
	)

	// Code under test would take tr as its http.RoundTripper; here we send by hand.
	client := tr.Client()
	for i := range 4 {
		body := fmt.Sprintf(`{"attempt":%d}`, i+1)
		resp, err := client.Post("https://example.com/hook?debug=1", "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		resp.Body.Close()
		fmt.Println(resp.Status, resp.Header.Values("Retry-After"))
	}

	for _, r := range tr.RequestsTo("https://example.com/hook") {
		fmt.Println(r.Method, r.Header.Get("Content-Type"), string(r.Body))
	}
	// Output:
	// 503 Service Unavailable [30]
	// error: Post "https://example.com/hook?debug=1": EOF
	// 200 OK []
	// 200 OK []
	// POST application/json {"attempt":1}
	// POST application/json {"attempt":2}
	// POST application/json {"attempt":3}
	// POST application/json {"attempt":4}
}

func ExampleReceiver() {
	t := &exampleTB{} // in a test, pass its *testing.T
	defer t.runCleanups()

	secret := webhook.NewSecret()
	r := webhooktest.NewReceiver(t, secret)
	r.Script(webhooktest.Status(http.StatusInternalServerError), webhooktest.Status(http.StatusNoContent))

	// What a sender does on each attempt: sign with the same webhook-id and a fresh timestamp.
	post := func(secret, body string) {
		sec, err := webhook.ParseSecret(secret)
		if err != nil {
			panic(err)
		}
		req, err := http.NewRequest(http.MethodPost, r.URL, strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		msg := webhook.Message{ID: "msg_1", Timestamp: time.Now(), Body: []byte(body)}
		if err := (webhook.StandardSigner{}).Sign(req.Header, msg, []webhook.Secret{sec}); err != nil {
			panic(err)
		}
		resp, err := r.Client().Do(req)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	body := `{"id":"msg_1","type":"order.created","timestamp":"2026-01-02T15:04:05Z","version":"1","data":{}}`
	post(secret, body)              // 500: the sender will retry
	post(secret, body)              // 204
	post(webhook.NewSecret(), body) // another secret: 401, the script is not consulted
	post(secret, body+" ")          // 204 again: the script repeats its last response

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitVerified(ctx, 3); err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range r.Deliveries() {
		fmt.Println(d.Envelope.Type, d.Verified, d.Status)
	}
	fmt.Println("unique:", r.UniqueIDs(), "duplicates:", r.Duplicates())
	fmt.Println(bytes.Equal(r.Verified()[0].Body, []byte(body)))
	// Output:
	// 500
	// 204
	// 401
	// 204
	// order.created true 500
	// order.created true 204
	// order.created false 401
	// order.created true 204
	// unique: 1 duplicates: 2
	// true
}

// exampleTB stands in for the *testing.T that a real test passes to NewReceiver.
type exampleTB struct {
	testing.TB
	cleanups []func()
}

func (e *exampleTB) Helper()                           {}
func (e *exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (e *exampleTB) Cleanup(f func())                  { e.cleanups = append(e.cleanups, f) }

func (e *exampleTB) runCleanups() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}
